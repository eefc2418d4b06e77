"""Re-draw a rare-class draw's random crop until it shows enough of its class (DAFormer's ``min_crop_ratio``).

An image drawn for class ``c`` (:class:`~domadapt.data.rare_class.RareClassSampler`) holds more than
``min_pixels`` pixels of ``c``, but its random crop may hold few or none. DAFormer
(``lhoyer/DAFormer`` @e6f6e04, ``mmseg/datasets/uda_dataset.py:94-105``) therefore runs the source
pipeline again (load, resize, random crop, flip) on the same image until the transformed label holds
*more than* ``min_pixels · min_crop_ratio`` pixels of ``c`` -- at most 10 more times, the last one
kept whatever it shows -- when ``min_crop_ratio > 0`` (0.5 in its GTA config). The threshold is in
pixels of the transformed label (after resize and crop), ``min_pixels`` in pixels of the original
label, as in DAFormer.

:class:`RareClassCrops` does the same around any training dataset: attempt ``j = 1..attempts`` re-runs
the dataset's transform with the seed ``default_rng((seed, j))`` derives from the draw's augmentation
seed, so the re-draws are as reproducible and resumable as the draw itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from domadapt.data.resumable import SEED_SPACE, SeededIndex


def redraw_seed(seed: int, attempt: int) -> int:
    """Augmentation seed of re-draw ``attempt`` (1, 2, …) of a draw whose seed is ``seed``."""
    return int(np.random.default_rng((int(seed), int(attempt))).integers(0, SEED_SPACE))


class RareClassCrops(Dataset):
    """A segmentation training dataset whose rare-class draws re-draw their crop (see the module docstring).

    Indices without a ``rare_class`` (plain ints, :class:`~domadapt.data.resumable.SeededIndex`) are
    passed through unchanged.

    Args:
        dataset: the source training dataset (its transform does the random crop).
        min_pixels: the sampler's ``min_pixels``.
        min_crop_ratio: a crop is kept when it holds more than ``min_pixels · min_crop_ratio`` pixels of
            the drawn class; 0 = never re-draw.
        attempts: most re-draws per sample (DAFormer: 10).
    """

    def __init__(self, dataset: Any, min_pixels: int, min_crop_ratio: float = 0.5, attempts: int = 10) -> None:
        if min_pixels < 0:
            raise ValueError(f"RareClassCrops.min_pixels: expected >= 0, got {min_pixels}")
        if min_crop_ratio < 0:
            raise ValueError(f"RareClassCrops.min_crop_ratio: expected >= 0, got {min_crop_ratio}")
        if attempts < 0:
            raise ValueError(f"RareClassCrops.attempts: expected >= 0, got {attempts}")
        self.dataset, self.min_pixels = dataset, int(min_pixels)
        self.min_crop_ratio, self.attempts = float(min_crop_ratio), int(attempts)

    @property
    def threshold(self) -> float:
        """Pixels of the drawn class a crop must exceed: ``min_pixels · min_crop_ratio``."""
        return self.min_pixels * self.min_crop_ratio

    def describe(self) -> str:
        parts = self.dataset.datasets if isinstance(self.dataset, ConcatDataset) else [self.dataset]
        inner = " + ".join(d.describe() if callable(getattr(d, "describe", None)) else type(d).__name__ for d in parts)
        return f"RareClassCrops({inner}, > {self.threshold:g} px of the drawn class)"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        c = getattr(index, "rare_class", None)
        if c is None or self.min_crop_ratio <= 0:
            return sample
        seed = getattr(index, "seed", 0)
        for attempt in range(1, self.attempts + 1):
            if int((sample["mask"] == c).sum()) > self.threshold:
                break
            sample = self.dataset[SeededIndex(int(index), redraw_seed(seed, attempt))]
        return sample
