"""`BalancedRandomCrop`: a random crop re-drawn while one class covers too much of it (mmseg's ``cat_max_ratio``).

DAFormer's source pipeline (DAFormer@e6f6e04 configs/_base_/datasets/uda_gta_to_cityscapes_512x512.py:16, mmseg
``RandomCrop(cat_max_ratio=0.75)``, mmseg/datasets/pipelines/transforms.py ``RandomCrop.__call__``) draws a crop box,
then up to 10 more while the crop's label map fails

    len(n) > 1  and  max(n) / sum(n) < r          (n = pixel count of each class present, ignore 255 excluded)

and keeps the last box drawn (11 draws at most). It keeps crops of a single road or sky from dominating a batch.
Without a mask (target images) it is a plain random crop.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np

from domadapt.structures import IGNORE_INDEX


def dominated(mask: np.ndarray, ratio: float, ignore_index: int = IGNORE_INDEX) -> bool:
    """Whether a crop's label map fails mmseg's test: fewer than two classes, or one with ``>= ratio`` of the labelled
    pixels (``mask`` ``(H, W)`` integer labels)."""
    counts = np.bincount(mask[mask != ignore_index].ravel().astype(np.int64))
    counts = counts[counts > 0]
    return not (len(counts) > 1 and counts.max() / counts.sum() < ratio)


class BalancedRandomCrop(A.RandomCrop):
    """``A.RandomCrop`` whose box is re-drawn up to ``attempts`` times while :func:`dominated` (see the module
    docstring); ``ratio >= 1`` is a plain random crop.

    Args:
        height, width: crop size.
        ratio: ``r``, the largest share one class may have (mmseg / DAFormer: 0.75).
        attempts: re-draws after the first box (mmseg: 10).
        ignore_index: label value left out of the counts.
    """

    def __init__(self, height: int, width: int, ratio: float = 0.75, attempts: int = 10,
                 ignore_index: int = IGNORE_INDEX, p: float = 1.0) -> None:
        super().__init__(height, width, p=p)
        if not 0.0 < ratio:
            raise ValueError(f"BalancedRandomCrop.ratio: expected a share > 0, got {ratio}")
        self.ratio, self.attempts, self.ignore_index = float(ratio), int(attempts), int(ignore_index)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        out = super().get_params_dependent_on_data(params, data)
        mask = data.get("mask")
        if mask is None or self.ratio >= 1.0:
            return out
        for _ in range(self.attempts):
            x0, y0, x1, y1 = out["crop_coords"]
            if not dominated(mask[y0:y1, x0:x1], self.ratio, self.ignore_index):
                break
            out = super().get_params_dependent_on_data(params, data)
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "ratio", "attempts", "ignore_index")
