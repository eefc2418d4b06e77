"""Recipe cards: the settings that decide whether a paper is reproduced, each with the released code's
(or the paper's) value and where it comes from, checked against the recipe as it resolves.

A card file (``recipes/cards/*.yaml``) maps recipe paths (relative to the recipes folder) to cards::

    segmentation/gta5_to_cityscapes_output_adversarial.yaml:
      reference: "BDL @a0e5821 (github.com/liyunsheng13/BDL); AdaptSegNet; paper: Tsai et al., CVPR 2018"
      not_applicable: {thresholds: "no pseudo labels in this recipe"}
      entries:
        - topic: learning_rate
          key: model.init_args.lr
          value: 0.00025
          source: "BDL train_options.py:16 (--learning-rate 2.5e-4)"
        - topic: initial_weights
          key: model.init_args.net.init_args.weights
          value: imagenet                     # what the recipe resolves to
          released: "DeepLab ImageNet+COCO Caffe checkpoint"
          deviation: "torchvision ImageNet weights: ..."   # why; the recipe header names it too
          name: initial weights               # the words the recipe header uses for this deviation

``key`` is a dotted path into the resolved configuration (:func:`~domadapt.recipes.resolve.lookup`).
For a pipeline, ``stages`` lists the stages an entry holds for (default: every Lightning stage); keys of
non-Lightning stages (pseudo labels, translation) read ``options.*`` / ``inputs.*`` of the stage. An entry
without ``deviation`` says the recipe has the released value; with it, ``value`` is ours, ``released``
the reference's, and ``name`` must appear in the header comment of the recipe (or of a stage's recipe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from domadapt.recipes.resolve import lookup

#: what every card covers (an entry per topic, or a reason under ``not_applicable``)
TOPICS: tuple[str, ...] = (
    "learning_rate", "lr_groups", "optimizer", "momentum", "weight_decay", "schedule", "horizon", "iterations",
    "batch", "devices", "image_size", "resampling", "loss_weights", "thresholds", "initial_weights", "evaluation",
)
ENTRY_KEYS = {"topic", "key", "value", "source", "stages", "released", "deviation", "name", "note"}


@dataclass
class Mismatch:
    """A card entry the recipe does not satisfy."""

    recipe: str
    stage: str
    key: str
    expected: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.recipe} [{self.stage}] {self.key}: card says {self.expected!r}, recipe resolves to {self.found!r}"


def load_cards(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every card of every ``*.yaml`` in ``folder``, by recipe path (one-line ``ValueError`` on a duplicate
    recipe or a malformed card)."""
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        for recipe, card in (yaml.safe_load(path.read_text()) or {}).items():
            if recipe in cards:
                raise ValueError(f"{path}: a second card for {recipe}")
            validate_card(card, f"{path.name}: {recipe}")
            cards[recipe] = card
    return cards


def validate_card(card: Any, where: str) -> None:
    """Check a card's shape (one-line ``ValueError`` naming the card and the field)."""
    if not isinstance(card, dict) or not isinstance(card.get("entries"), list) or not card.get("reference"):
        raise ValueError(f"{where}: expected a mapping with `reference` and a list of `entries`")
    for i, e in enumerate(card["entries"]):
        at = f"{where}: entries[{i}]"
        if not isinstance(e, dict) or not {"topic", "key", "value", "source"} <= set(e):
            raise ValueError(f"{at}: expected topic, key, value and source")
        if set(e) - ENTRY_KEYS:
            raise ValueError(f"{at}: unknown field {sorted(set(e) - ENTRY_KEYS)[0]!r}")
        if e["topic"] not in TOPICS:
            raise ValueError(f"{at}: topic {e['topic']!r} is not one of {', '.join(TOPICS)}")
        if "deviation" in e and not ({"released", "name"} <= set(e)):
            raise ValueError(f"{at}: a deviation needs `released` (the reference's value) and `name`")
    missing = set(TOPICS) - {e["topic"] for e in card["entries"]} - set(card.get("not_applicable") or {})
    if missing:
        raise ValueError(f"{where}: no entry for {', '.join(sorted(missing))} (add one or a reason in not_applicable)")


def same(expected: Any, found: Any) -> bool:
    """Card value equality: numbers to 1e-9 relative, lists and mappings item by item, else ``==``."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return expected is found
    if isinstance(expected, (int, float)) and isinstance(found, (int, float)):
        return math.isclose(expected, found, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(expected, (list, tuple)) and isinstance(found, (list, tuple)):
        return len(expected) == len(found) and all(same(a, b) for a, b in zip(expected, found))
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(same(v, found[k]) for k, v in expected.items())
    return expected == found


def check_card(recipe: str, card: dict[str, Any], resolved: dict[str, dict[str, Any]]) -> list[Mismatch]:
    """Every entry of ``card`` against the resolved configurations of its recipe.

    Args:
        recipe: the recipe's name (for messages).
        card: the card.
        resolved: ``{stage: configuration}`` (:func:`~domadapt.recipes.resolve.resolve_recipe`).

    Returns:
        The entries that do not hold (empty when the recipe matches its card).
    """
    out = []
    for e in card["entries"]:
        stages = e.get("stages") or [s for s, cfg in resolved.items() if "options" not in cfg]
        for stage in stages:
            if stage not in resolved:
                out.append(Mismatch(recipe, stage, e["key"], e["value"], "<no such stage>"))
                continue
            try:
                found = lookup(resolved[stage], e["key"])
            except KeyError as err:
                found = f"<{err.args[0]}>"
            if not same(e["value"], found):
                out.append(Mismatch(recipe, stage, e["key"], e["value"], found))
    return out


def header(path: str | Path) -> str:
    """The leading comment block of a recipe file."""
    lines = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return "\n".join(lines)
