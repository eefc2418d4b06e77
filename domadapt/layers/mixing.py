"""Cross-domain mixing: paste part of each source image onto a target image (DACS's ClassMix, CutMix for classes).

A mask ``M`` (1 = source pixel) mixes a source image ``x_s`` with a target image ``x_t``::

    x_mix = M · x_s + (1 − M) · x_t

* :func:`class_mix_masks` — DACS (Tranheden et al., WACV 2021; released ``trainUDA.py``): per source label map,
  the pixels of half of the classes present, ``(n + n mod 2) / 2`` of the ``n`` distinct values drawn without
  replacement. As in the released code the ignore value 255 counts as a class (its line filtering it out is
  commented out), so ignored source pixels may be pasted; they stay ignored in the mixed label.
* :func:`cut_mix_masks` — for classification, where a sample has one label: a box per image (CutMix, Yun et al.,
  ICCV 2019) of area share ``λ ~ U(0, 1)``, side ``√λ`` of the image's, at a uniform position. The mixed sample's
  label is then the pair ``(y_s, ŷ_t)`` weighted by the box's actual area share (:func:`source_share`).

Random draws use the global generator of the labels' / batch's device (saved in checkpoints).
"""

from __future__ import annotations

import torch
from torch import Tensor


def class_mix_masks(labels: Tensor) -> Tensor:
    """ClassMix masks from source label maps.

    Args:
        labels: ``(N, H, W)`` int64 source labels (255 = ignore, counted as a class as DACS does).

    Returns:
        ``(N, 1, H, W)`` float masks in ``{0, 1}``, 1 on the pixels of the chosen classes.
    """
    masks = []
    for y in labels:
        classes = torch.unique(y)
        n = classes.numel()
        chosen = classes[torch.randperm(n, device=y.device)[: (n + n % 2) // 2]]
        masks.append(torch.isin(y, chosen))
    return torch.stack(masks)[:, None].float()


def cut_mix_masks(n: int, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """One random box per image: area share ``λ ~ U(0, 1)``, sides ``round(√λ · H)`` × ``round(√λ · W)``.

    Returns:
        ``(n, 1, height, width)`` float masks in ``{0, 1}``, 1 inside the box.
    """
    side = torch.rand(n, device=device).sqrt()
    h = (side * height).round().long()
    w = (side * width).round().long()
    y0 = (torch.rand(n, device=device) * (height - h + 1)).floor().long()
    x0 = (torch.rand(n, device=device) * (width - w + 1)).floor().long()
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + h)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + w)[:, None, None]))
    return inside[:, None].float()


def mix(mask: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """``M · source + (1 − M) · target``; ``mask`` broadcasts over channels.

    Args:
        mask: ``(N, 1, H, W)`` in ``[0, 1]``.
        source, target: ``(N, C, H, W)`` (or ``(N, H, W)`` for label or weight maps, with a ``(N, 1, H, W)`` mask).

    Returns:
        The mixed tensor, ``source``'s shape and dtype.
    """
    m = mask if source.dim() == 4 else mask[:, 0]
    return torch.where(m.bool(), source, target) if not source.is_floating_point() else \
        (m * source + (1 - m) * target).to(source.dtype)


def source_share(mask: Tensor) -> Tensor:
    """``(N,)`` the share of each mixed image that comes from the source: ``mean_{h,w} M``."""
    return mask.flatten(1).mean(1)


__all__ = ["class_mix_masks", "cut_mix_masks", "mix", "source_share"]
