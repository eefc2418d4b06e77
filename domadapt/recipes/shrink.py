"""A recipe made small for a smoke run, everything else as written.

:func:`shrink` walks a recipe (or a pipeline stage's options) and changes exactly what a smoke run
changes: every dataset reads at most ``images`` samples, every image size (``resize``, ``crop``, ``size``,
``output_size``, ``resize_within``, ``resize_shorter``) is multiplied by ``scale``, so are lengths in pixels of the
training crop (``psweight_ignore_top`` / ``_bottom``, ``mic_block``; at least 1) and, by ``scale²``, pixel counts
(``rcs_min_pixels``; at least 1), batch sizes are capped at ``images``, loader workers at :data:`MAX_WORKERS`, and network weights that would need a download
(``weights: imagenet``) become a random initialisation. Each change of the last kind is reported, so the smoke
output can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domadapt.data.roots import is_dataset

SIZE_KEYS = frozenset({"resize", "crop", "size", "output_size", "resize_within"})  # (height, width) pairs
SIDE_KEYS = frozenset({"resize_shorter"})  # one side length
LENGTH_KEYS = frozenset({"psweight_ignore_top", "psweight_ignore_bottom", "mic_block"})  # pixels of a crop, no floor
AREA_KEYS = frozenset({"rcs_min_pixels"})  # pixel counts in the labels as stored
BATCH_KEYS = frozenset({"batch_size", "target_batch_size", "eval_batch_size"})
WEIGHT_KEYS = frozenset({"weights", "encoder_weights"})
MAX_WORKERS = 2  # loader worker processes: the worker path still runs, a few images need no more
MIN_SIDE = 32  # smallest scaled side: DeepLabV2 (stride 8) and the 5-layer discriminators still fit


@dataclass
class Shrink:
    """How to shrink a recipe.

    Attributes:
        images: samples per dataset, and the largest batch.
        scale: factor on every image size (sides are kept at :data:`MIN_SIDE` or more).
        replaced_weights: filled by :func:`shrink`: the weights that became a random initialisation.
    """

    images: int = 4
    scale: float = 1.0
    replaced_weights: set[str] = field(default_factory=set)

    def side(self, value: int) -> int:
        return value if self.scale == 1.0 else max(MIN_SIDE, round(value * self.scale))


def shrink(node: Any, how: Shrink) -> Any:
    """A shrunk copy of ``node`` (a recipe mapping, or any part of one); see the module docstring."""
    if isinstance(node, list):
        return [shrink(v, how) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in SIZE_KEYS and _is_size(value):
            value = [how.side(v) for v in value]
        elif key in SIDE_KEYS and isinstance(value, int) and not isinstance(value, bool):
            value = how.side(value)
        elif key in LENGTH_KEYS and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            value = max(1, round(value * how.scale))
        elif key in AREA_KEYS and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            value = max(1, round(value * how.scale ** 2))
        elif key in BATCH_KEYS and isinstance(value, int) and not isinstance(value, bool):
            value = min(value, how.images)
        elif key == "num_workers" and isinstance(value, int) and not isinstance(value, bool):
            value = min(value, MAX_WORKERS)
        elif key in WEIGHT_KEYS and _is_download(value):
            how.replaced_weights.add(value)
            value = None
        else:
            value = shrink(value, how)
        out[key] = value
    if is_dataset(out.get("class_path")):
        args = dict(out.get("init_args") or {})
        args["limit"] = min(args.get("limit") or how.images, how.images)
        out["init_args"] = args
    return out


def _is_download(value: Any) -> bool:
    """A weights *name* (``imagenet``, an smp encoder's ``ssl`` …), not a local path: a missing file stays an error."""
    return isinstance(value, str) and value.lower() not in ("none", "null", "") and "/" not in value \
        and not Path(value).suffix


def _is_size(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
