"""Listings built from classes: every public subclass of a base defined inside a package, by class name.

``LOSSES``, ``METHODS`` and ``MODELS`` are built this way, so a new loss, method or network is listed (and covered by
the tests that parametrize over the listing) as soon as its module is imported by its package's ``__init__``.
"""

from __future__ import annotations

from collections.abc import Callable


def package_subclasses(base: type, package: str, accept: Callable[[type], bool] = lambda cls: True) -> dict[str, type]:
    """Public subclasses of ``base`` (at any depth) defined in modules under ``package``, sorted by name.

    Args:
        base: the base class (not listed itself).
        package: dotted package name, e.g. ``"domadapt.losses"``; classes defined elsewhere (tests, users) are left out.
        accept: a further test a class must pass (e.g. a contract attribute).
    """
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(package + ".") and not cls.__name__.startswith("_") and accept(cls):
            found[cls.__name__] = cls
    return dict(sorted(found.items()))
