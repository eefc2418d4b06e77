"""`instantiate`: `{class_path, init_args}` -> the object, arguments passed as written; one-line errors naming the
field."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from domadapt.class_path import instantiate


class _Mine(ValueError):
    pass


def test_the_class_is_called_with_init_args_as_written():
    assert instantiate({"class_path": "fractions.Fraction", "init_args": {"numerator": 3, "denominator": 4}},
                       "x") == Fraction(3, 4)
    assert instantiate({"class_path": "fractions.Fraction", "init_args": None}, "x") == Fraction(0)
    nested = {"class_path": "fractions.Fraction"}
    got = instantiate({"class_path": "builtins.dict", "init_args": {"inner": nested, "n": "1"}}, "x")
    assert got == {"inner": nested, "n": "1"}  # nothing resolved or coerced


@pytest.mark.parametrize("spec", [None, "fractions.Fraction", {"init_args": {}}])
def test_a_malformed_spec_names_the_field(spec):
    with pytest.raises(_Mine, match=re.escape("stage 'tr'.dataset: expected {class_path: ..., init_args: {...}}, "
                                              f"got {spec!r}")):
        instantiate(spec, "stage 'tr'.dataset", _Mine)


@pytest.mark.parametrize("path", ["nope.Nothing", "fractions.Nothing", "Fraction"])
def test_a_class_that_cannot_be_imported_names_the_field(path):
    with pytest.raises(ValueError, match=f"^strategy.class_path: cannot import '{path}'$"):
        instantiate({"class_path": path}, "strategy")


def test_constructor_errors_pass_through():
    with pytest.raises(TypeError):
        instantiate({"class_path": "fractions.Fraction", "init_args": {"nope": 1}}, "x")
