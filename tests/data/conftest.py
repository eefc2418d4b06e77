"""Fixtures of the dataset-adapter tests (helpers live in ``adapter_trees.py``)."""

from __future__ import annotations

import pytest

from adapter_trees import ADAPTER_KINDS, make_tree


@pytest.fixture(params=ADAPTER_KINDS)
def any_tree(request, tmp_path):
    """A generated 3-sample tree of every adapter kind (``tree.kind`` names it)."""
    tree = make_tree(request.param, tmp_path / request.param)
    tree.kind = request.param
    return tree
