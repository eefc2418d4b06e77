"""`lazy_attributes`: a package name is imported from its submodule on first use; `dir()` lists the names; an
unknown name is an AttributeError naming the package. Checked on a throw-away package and on the three lazy
packages of domadapt."""

from __future__ import annotations

import importlib
import sys

import pytest

PACKAGES = ["domadapt.data", "domadapt.pipeline", "domadapt.pseudo"]


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    root = tmp_path / "lazytoy"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from domadapt.lazy import lazy_attributes\n"
        "_NAMES = {'VALUE': 'heavy', 'twice': 'light'}\n"
        "__all__ = sorted(_NAMES)\n"
        "__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)\n")
    (root / "heavy.py").write_text("VALUE = 42\n")
    (root / "light.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("lazytoy")
    for name in [n for n in sys.modules if n == "lazytoy" or n.startswith("lazytoy.")]:
        del sys.modules[name]


def test_a_name_is_imported_on_first_use(toy_package):
    assert "lazytoy.heavy" not in sys.modules and "lazytoy.light" not in sys.modules
    assert toy_package.VALUE == 42
    assert "lazytoy.heavy" in sys.modules and "lazytoy.light" not in sys.modules
    assert toy_package.twice(3) == 6
    assert dir(toy_package) == ["VALUE", "twice"]


def test_an_unknown_name_is_an_attribute_error_naming_the_package(toy_package):
    with pytest.raises(AttributeError, match="^module 'lazytoy' has no attribute 'heavy_thing'$"):
        toy_package.heavy_thing
    assert not hasattr(toy_package, "heavy")  # a submodule not yet imported is not a name


@pytest.mark.parametrize("package", PACKAGES)
def test_domadapt_packages(package):
    module = importlib.import_module(package)
    names = module._NAMES
    assert dir(module) == module.__all__ == sorted(names)
    for name, sub in names.items():
        assert getattr(module, name) is getattr(importlib.import_module(f"{package}.{sub}"), name)
    with pytest.raises(AttributeError, match=f"^module '{package}' has no attribute 'Nothing'$"):
        module.Nothing
