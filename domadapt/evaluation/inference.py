"""The one evaluation path of segmentation and classification, and sliding-window inference.

Every prediction domadapt makes — validation, test, ``domadapt predict``, pseudo labels, the test report's
pictures, export — is :meth:`~domadapt.methods.base.DomainAdaptationModule.predict_probabilities`, which is
:func:`class_probabilities` of the network's logits at its *native* resolution (:func:`native_resolution`).
That is the BDL protocol (``evaluation.py:103-105``, ``SSL.py:36-37`` of the released code; METHODS.md §0.1)::

    image (H, W) --resize in the evaluation transform (Pillow, as in training)--> (h, w)
    p = softmax(net(x))                            # (N, K, h/8, w/8) for DeepLab-V2: no upsampling in the net
    P = bilinear(p, label size, align_corners=True)  # one upsampling, of probabilities
    prediction = argmax(P), confidence = max(P)

For Cityscapes val the evaluation transform resizes 2048x1024 to 1024x512 with Pillow bicubic and keeps the
label at 2048x1024 (``Augment(resize=..., full_resolution_mask=True)``); the training transforms resize with
the same Pillow filter. :func:`sliding_window_logits` is for images too large to run in one pass.

Call these under ``torch.no_grad()`` (Lightning's validation/test loops already do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ModelFn = Callable[[torch.Tensor], Any]


def _logits(out: Any) -> torch.Tensor:
    """Logits from a network output: a tensor, or anything with ``.logits`` (``NetOutput``)."""
    logits = getattr(out, "logits", out)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model_fn: expected (N, K, h, w) logits or an output with .logits, got {shape}")
    return logits


@contextlib.contextmanager
def native_resolution(module: nn.Module) -> Iterator[None]:
    """Inside the block, every network in ``module`` that upsamples its logits to the input size in ``forward``
    (``upsample_logits = True``, e.g. :class:`~domadapt.models.DeepLabV2`) returns them at its own output
    stride instead, so that :func:`class_probabilities` upsamples once, probabilities rather than logits."""
    nets = [m for m in module.modules() if getattr(m, "upsample_logits", None) is True]
    for m in nets:
        m.upsample_logits = False
    try:
        yield
    finally:
        for m in nets:
            m.upsample_logits = True


def class_probabilities(logits: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
    """``softmax`` over classes (float32), segmentation probabilities upsampled to the label's size.

    Args:
        logits: ``(N, K)`` or ``(N, K, h, w)`` at the network's native resolution.
        output_size: ``(H, W)`` of the label; ``None`` = as given. Ignored for ``(N, K)`` logits.

    Returns:
        ``(N, K)`` or ``(N, K, H, W)`` probabilities: ``bilinear(softmax(logits), (H, W), align_corners=True)``.
    """
    probs = logits.float().softmax(1)
    if probs.ndim != 4 or output_size is None or tuple(probs.shape[-2:]) == tuple(output_size):
        return probs
    return F.interpolate(probs, size=tuple(int(v) for v in output_size), mode="bilinear", align_corners=True)


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    h, w = (v, v) if isinstance(v, int) else tuple(v)
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: expected positive (height, width), got {v}")
    return int(h), int(w)


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
