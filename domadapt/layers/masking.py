"""Random block masks for masked image consistency (MIC, Hoyer et al., CVPR 2023).

MIC's released ``BlockMaskGenerator`` (``seg/mmseg/models/utils/masking_transforms.py``): a grid of
``round(H / b) × round(W / b)`` cells, each kept with probability ``1 − r`` (``r`` = mask ratio), resized to the image
with nearest-neighbour interpolation; the masked image is ``x ⊙ K`` — in normalised units, so a masked pixel takes
the mean colour. MIC's segmentation setting is ``b = 64`` px at full resolution and ``r = 0.7``; its classification
setting ``b = 32`` at 224 px and ``r = 0.5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def block_masks(n: int, height: int, width: int, block: int, ratio: float,
                device: torch.device | str = "cpu") -> Tensor:
    """``(n, 1, height, width)`` float keep-masks in ``{0, 1}``: blocks of about ``block`` px, each kept with
    probability ``1 − ratio`` (draws from the global generator of ``device``).

    Raises:
        ValueError: ``block < 1`` or ``ratio`` outside ``[0, 1)``.
    """
    if block < 1 or not 0.0 <= ratio < 1.0:
        raise ValueError(f"block_masks: expected block >= 1 and 0 <= ratio < 1, got block={block}, ratio={ratio}")
    cells = (max(1, round(height / block)), max(1, round(width / block)))
    keep = (torch.rand(n, 1, *cells, device=device) > ratio).float()
    return F.interpolate(keep, size=(height, width), mode="nearest")


def mask_images(images: Tensor, keep: Tensor) -> Tensor:
    """``images ⊙ keep``: ``(N, C, H, W)`` images, ``(N, 1, H, W)`` keep-masks; the images' dtype and layout."""
    return images * keep.to(images.dtype)


__all__ = ["block_masks", "mask_images"]
