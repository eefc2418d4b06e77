"""Segmentation inference at the label's resolution: resize-and-upsample (BDL) and sliding window.

BDL evaluation protocol (METHODS.md §0.1): a Cityscapes val image (2048×1024) is resized to
**1024×512** (bicubic), the network runs once, the class *probabilities* (softmax) are upsampled
bilinearly with ``align_corners=True`` to the label size **2048×1024**, and the argmax is scored
against the full-resolution ground truth. Single scale, no flip. :func:`full_resolution_logits`
implements that recipe for any ``model_fn``; :func:`sliding_window_logits` is for images too large
to run in one pass.

Call both under ``torch.no_grad()`` (Lightning's validation/test loops already do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

ModelFn = Callable[[torch.Tensor], Any]


def _logits(out: Any) -> torch.Tensor:
    """Logits from a network output: a tensor, or anything with ``.logits`` (``NetOutput``)."""
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model_fn: expected (N, K, h, w) logits or an output with .logits, got {shape}")
    return logits


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (v, v) if isinstance(v, int) else tuple(v)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: expected positive (height, width), got {v}")
    return int(h), int(w)


def full_resolution_logits(
    model_fn: ModelFn,
    image: torch.Tensor,
    output_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
    align_corners: bool = True,
    input_interpolation: Literal["bilinear", "bicubic"] = "bicubic",
    upsample: Literal["probs", "logits"] = "probs",
) -> torch.Tensor:
    """Run ``model_fn`` at ``input_size`` and return class scores at the label size ``output_size``.

    Args:
        model_fn: ``(N, C, H, W)`` image -> ``(N, K, h, w)`` logits or a ``NetOutput``.
        image: ``(N, C, H, W)`` normalised image batch.
        output_size: ``(height, width)`` of the label, e.g. ``(1024, 2048)`` for Cityscapes.
        input_size: ``(height, width)`` the network sees, e.g. ``(512, 1024)``; ``None`` = as given.
            The resize is anti-aliased (like PIL's, which BDL uses) and ``align_corners=False``.
        align_corners: for the output upsampling (BDL: ``True``).
        input_interpolation: resampling of the input image (BDL: bicubic).
        upsample: ``"probs"`` upsamples ``softmax(logits)`` (BDL) and returns probabilities;
            ``"logits"`` upsamples the raw logits. The argmax of the two can differ at class borders.

    Returns:
        ``(N, K, *output_size)`` probabilities (``"probs"``) or logits (``"logits"``); the
        prediction is ``argmax(dim=1)``.
    """
    if image.ndim != 4:
        raise ValueError(f"image: expected (N, C, H, W), got shape {tuple(image.shape)}")
    output_size = _pair(output_size, "output_size")
    x = image
    if input_size is not None and tuple(x.shape[-2:]) != _pair(input_size, "input_size"):
        x = F.interpolate(x, size=_pair(input_size, "input_size"), mode=input_interpolation,
                          align_corners=False, antialias=True)
    scores = _logits(model_fn(x))  # (N, K, h, w)
    if upsample == "probs":
        scores = scores.softmax(dim=1)
    elif upsample != "logits":
        raise ValueError(f"upsample: expected 'probs' or 'logits', got {upsample!r}")
    if tuple(scores.shape[-2:]) == output_size:
        return scores
    return F.interpolate(scores, size=output_size, mode="bilinear", align_corners=align_corners)


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, size)``; the last window ends exactly at the border."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def sliding_window_logits(
    model_fn: ModelFn,
    image: torch.Tensor,
    window: int | tuple[int, int],
    stride: int | tuple[int, int],
    num_classes: int,
) -> torch.Tensor:
    """Average the logits of overlapping windows over the whole image.

    Windows of size ``window`` start every ``stride`` pixels; the last row/column of windows is
    shifted to end at the image border, so no window leaves the image. An image smaller than the
    window is zero-padded at the bottom/right (zero is the mean after normalisation) and the output
    cropped back. Window logits of a lower resolution (output stride) are upsampled bilinearly to
    the window size before averaging.

    Args:
        model_fn: ``(N, C, h, w)`` -> ``(N, K, h', w')`` logits or a ``NetOutput``.
        image: ``(N, C, H, W)``.
        window: ``(height, width)`` (or one int) of a window.
        stride: ``(height, width)`` (or one int) step between windows; ``stride < window`` overlaps.
        num_classes: ``K``.

    Returns:
        ``(N, K, H, W)`` logits, each pixel the mean over the windows that cover it.
    """
    if image.ndim != 4:
        raise ValueError(f"image: expected (N, C, H, W), got shape {tuple(image.shape)}")
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    n, _, h, w = image.shape
    ph, pw = max(wh - h, 0), max(ww - w, 0)
    x = F.pad(image, (0, pw, 0, ph)) if ph or pw else image  # (N, C, H', W')
    hp, wp = x.shape[-2:]
    total = x.new_zeros(n, num_classes, hp, wp)
    count = x.new_zeros(1, 1, hp, wp)
    for top in _starts(hp, wh, sh):
        for left in _starts(wp, ww, sw):
            crop = x[..., top:top + wh, left:left + ww]
            logits = _logits(model_fn(crop))  # (N, K, h', w')
            if logits.shape[1] != num_classes:
                raise ValueError(f"model_fn: returned {logits.shape[1]} classes, expected num_classes={num_classes}")
            if tuple(logits.shape[-2:]) != tuple(crop.shape[-2:]):
                logits = F.interpolate(logits, size=crop.shape[-2:], mode="bilinear", align_corners=False)
            total[..., top:top + wh, left:left + ww] += logits
            count[..., top:top + wh, left:left + ww] += 1
    return (total / count)[..., :h, :w]
