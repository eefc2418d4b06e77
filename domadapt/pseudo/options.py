"""How pseudo labels are predicted, thresholded and stored: :class:`LabelOptions` of
:func:`~domadapt.pseudo.generate.generate_pseudo_labels`.

Its own light module (no torch) so that reading a pipeline recipe, whose ``pseudo_label`` stages extend these
options (:class:`~domadapt.pipeline.options.PseudoLabelOptions`), does not import the generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LabelOptions:
    """How :func:`~domadapt.pseudo.generate.generate_pseudo_labels` predicts, thresholds and stores the labels.

    Attributes:
        output_size: ``(H, W)`` at which segmentation labels are generated and stored (BDL: the target
            training size 512×1024); ``None`` = each image's raw size.
        batch_size: images per forward.
        round: self-training round passed to the strategy (progressive thresholds).
        bins: histogram bins (threshold resolution ``1 / bins``).
        cache: ``"disk"`` (one forward per image) or ``"recompute"`` (predict again in the writing pass).
        num_workers: DataLoader workers.
        hflip: label with the mean probabilities of each image and its horizontal mirror (flip test-time
            augmentation; a deviation from BDL, which labels single-scale without flip).
    """

    output_size: tuple[int, int] | None = None
    batch_size: int = 8
    round: int = 0
    bins: int = 1000
    cache: Literal["disk", "recompute"] = "disk"
    num_workers: int = 0
    hflip: bool = False


__all__ = ["LabelOptions"]
