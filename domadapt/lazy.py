"""Lazy names for a package ``__init__``: a name is imported from its submodule on first use (PEP 562).

``import domadapt.data.base`` then stays light: the package ``__init__`` imports no submodule, so OpenCV,
albumentations or Lightning load only when a name that needs them is used.

Example:
    >>> __all__ = sorted(_NAMES)  # doctest: +SKIP
    >>> __getattr__, __dir__ = lazy_attributes(__name__, _NAMES)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__`` (``"domadapt.data"``).
        names: ``{public name: submodule}``; ``"GTA5": "gta5"`` serves ``domadapt.data.GTA5`` from
            ``domadapt.data.gta5``.

    Returns:
        ``(__getattr__, __dir__)``: ``__getattr__(name)`` imports ``package.<submodule>`` and returns its ``name``, or
        raises ``AttributeError("module '<package>' has no attribute '<name>'")``; ``__dir__()`` is the sorted names.
    """
    listed = sorted(names)

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
