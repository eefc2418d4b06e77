"""Which YAML files under ``recipes/`` are recipes, and of which kind.

Every ``*.yaml`` under the recipes folder is a recipe except the cards (``recipes/cards/``), which
describe recipes. A recipe with a ``stages`` list is a pipeline (``domadapt pipeline run``); any other
is a fit recipe (``domadapt fit --config``). A recipe reads real data when it names
``$DOMADAPT_DATA`` (itself or, for a pipeline, through a stage's recipe).
"""

from __future__ import annotations

from pathlib import Path

from domadapt.io import DATA_VARIABLE, read_yaml_mapping

CARDS_DIR = "cards"


def list_recipes(root: str | Path) -> list[Path]:
    """Every recipe file under ``root`` (sorted; the ``cards/`` folder excluded)."""
    root = Path(root)
    return sorted(p for p in root.rglob("*.yaml") if CARDS_DIR not in p.relative_to(root).parts[:-1])


def is_pipeline(path: str | Path) -> bool:
    """``True`` for a pipeline recipe (a mapping with ``stages``)."""
    return "stages" in read_yaml_mapping(path, "a recipe (a YAML mapping)")


def recipe_files(path: str | Path) -> list[Path]:
    """The recipe and, for a pipeline, every recipe file its stages name (in stage order, each once)."""
    path = Path(path)
    if not is_pipeline(path):
        return [path]
    from domadapt.pipeline.config import load_pipeline

    stages = [s.config for s in load_pipeline(path).stages if isinstance(s.config, Path)]
    return [path, *dict.fromkeys(stages)]


def uses_real_data(path: str | Path) -> bool:
    """``True`` when the recipe (or a recipe file one of its stages names) reads ``$DOMADAPT_DATA``."""
    return any(DATA_VARIABLE in p.read_text() for p in recipe_files(path))
