"""Build an object from a recipe's ``{class_path: pkg.Cls, init_args: {...}}`` mapping, outside a LightningCLI parse.

Pipeline stage options (a translate stage's ``dataset``) and pseudo-label strategies name user classes this way.
The class is imported and called with ``init_args`` as they are: nothing is type-checked or coerced, and a nested
``class_path`` mapping inside ``init_args`` is passed on as a mapping. (jsonargparse's
``ArgumentParser.add_argument(type=Base)`` + ``instantiate`` would validate and coerce the arguments and build nested
specs too; that is a change of behaviour left to typed stage options.)
"""

from __future__ import annotations

import importlib
from typing import Any


def instantiate(spec: Any, where: str, error: type[Exception] = ValueError) -> Any:
    """``Cls(**init_args)`` for ``spec = {"class_path": "pkg.module.Cls", "init_args": {...}}``.

    Args:
        spec: the mapping; ``init_args`` may be absent or ``None`` (no arguments).
        where: the recipe field, for the messages (``"strategy"``, ``"stage 'tr'.dataset"``).
        error: the exception raised for a malformed spec or a class that cannot be imported.

    Returns:
        The new object. The constructor's own exceptions (a ``TypeError`` for an unknown argument) pass through.

    Raises:
        error: ``"<where>: expected {class_path: ..., init_args: {...}}, got ..."`` or
            ``"<where>.class_path: cannot import 'pkg.Cls'"``.
    """
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise error(f"{where}: expected {{class_path: ..., init_args: {{...}}}}, got {spec!r}")
    module, _, name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise error(f"{where}.class_path: cannot import {spec['class_path']!r}") from None
    return cls(**(spec.get("init_args") or {}))
