"""A recipe resolved as ``domadapt fit --config R --print_config`` prints it: every default filled in,
every ``class_path`` expanded, overrides applied. Nothing is instantiated and no data is read.

A pipeline resolves to one configuration per Lightning stage (``fit`` stages, and ``test`` /
``evaluate`` stages with their own recipe), with the pipeline's and the stage's overrides applied and
``{{stage}}`` references replaced by stand-in paths; any other stage (pseudo labels, translation)
resolves to ``{"options": ..., "inputs": ...}``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from domadapt.lightning_cli import resolve_args
from domadapt.recipes.listing import is_pipeline

FIT = "fit"  # the key of a fit recipe's only configuration


def resolve_recipe(path: str | Path) -> dict[str, dict[str, Any]]:
    """Resolved configurations of a recipe: ``{"fit": cfg}`` for a fit recipe, ``{stage: cfg}`` for each
    Lightning stage of a pipeline (in stage order)."""
    path = Path(path)
    if not is_pipeline(path):
        return {FIT: resolve_args(["--config", str(path)])}
    from domadapt.pipeline.config import load_pipeline
    from domadapt.pipeline.stages import RunContext, recipe_args

    spec = load_pipeline(path)
    with tempfile.TemporaryDirectory() as tmp:  # inline stage recipes are written under the run dir
        ctx = RunContext(spec, Path(tmp))
        return {s.name: resolve_args(recipe_args(s, ctx, pending=True)) if _lightning(s)
                else {"options": s.options, "inputs": s.inputs} for s in spec.stages}


def _lightning(stage) -> bool:
    """Stages with a Lightning configuration of their own (the others borrow a fit stage's)."""
    return stage.type == "fit" or (stage.type in ("test", "evaluate") and stage.config is not None)


def lookup(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` of a resolved configuration (``model.init_args.lr``); list items by
    index (``data.init_args.sources.0.init_args.root``).

    Raises:
        KeyError: the key names nothing in ``config`` (the message says where it stopped).
    """
    node: Any = config
    for i, part in enumerate(key.split(".")):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{key}: nothing at {'.'.join(key.split('.')[:i + 1])!r}")
    return node
