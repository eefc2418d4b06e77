"""Dataset roots of a recipe, checked before anything is built: a missing root is a one-line error naming the
recipe field, the path and where ``$DOMADAPT_DATA`` pointed, instead of a failure deep inside ``setup()``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

from domadapt.io import DataError, dataset_root, root_hint


def is_dataset(class_path: Any) -> bool:
    """``class_path`` names a :class:`~domadapt.data.base.DomainDataset` (a dataset of a recipe)."""
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    from domadapt.data.base import DomainDataset

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False  # the recipe parser reports it, with its own message
    return inspect.isclass(cls) and issubclass(cls, DomainDataset)


def dataset_roots(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(field, root as written)`` of every dataset with a ``root`` in a (resolved) recipe mapping."""
    if isinstance(node, list):
        for i, v in enumerate(node):
            yield from dataset_roots(v, f"{where}[{i}]")
    elif isinstance(node, dict):
        args = node.get("init_args")
        if is_dataset(node.get("class_path")) and isinstance(args, dict) and isinstance(args.get("root"), str):
            yield f"{where}.init_args.root".lstrip("."), args["root"]
        for k, v in node.items():
            yield from dataset_roots(v, f"{where}.{k}" if where else str(k))


def check_dataset_roots(config: dict[str, Any]) -> None:
    """Raise :class:`~domadapt.io.DataError` (one line) for the first dataset root that is not a folder."""
    for field, text in dataset_roots(config):
        path = dataset_root(text)
        if not path.is_dir():
            raise DataError(f"{field}: dataset root {path} not found{root_hint(text)}; the expected trees are "
                            "described in datasets/<name>/README.md and checked by `domadapt data check NAME ROOT`")
