"""Strong photometric augmentation of a normalised image batch, on the batch's device (DACS's colour jitter and blur).

DACS (Tranheden et al., WACV 2021; released ``trainUDA.py`` ``strongTransform`` and ``utils/transformsgpu.py``)
augments every mixed image with

* colour jitter with probability 0.8: brightness, contrast, saturation and hue, each of strength ``s = 0.25``
  (kornia ``ColorJitter(s, s, s, s)``), and
* a Gaussian blur with probability 0.5: ``σ ~ U(0.15, 1.15)``, kernel side ``≈ 0.1 ×`` the image side (odd).

Ours is not a transcription of kornia's operations: it uses torchvision-style formulas (multiplicative brightness,
contrast about the mean grey value; kornia adds the brightness and scales contrast without centring). Strengths are
drawn per image; whether an image is jittered / blurred too (``decisions="image"``), or once for the whole batch
(``decisions="batch"``: the released DACS, DAFormer and MIC draw ``U(0, 1)`` once per iteration against ``p`` for every
image they augment: DACS@cc6a87f trainUDA.py:445-456, DAFormer@e6f6e04 mmseg/models/uda/dacs.py:223-231 with
mmseg/models/utils/dacs_transforms.py:52-75, MIC@2f932a9 seg/mmseg/models/uda/masking_consistency_module.py:120-130).
Per
image, in ``[0, 1]`` units (the batch is de-normalised with ``mean`` / ``std`` first and normalised again after),
with ``g(x)`` the grey value ``0.299 r + 0.587 g + 0.114 b``::

    brightness  x ← x · b                         b ~ U(1 − s, 1 + s)
    contrast    x ← (x − mean g(x)) · c + mean g(x)   c ~ U(1 − s, 1 + s)
    saturation  x ← (x − g(x)) · a + g(x)          a ~ U(1 − s_a, 1 + s_a)   (s_a = s unless set)
    hue         rotate the chroma plane of YIQ by 2π h,  h ~ U(−s_h, s_h)

each followed by a clamp to ``[0, 1]``, in this fixed order (kornia draws the order at random; the hue rotation in YIQ
is the usual linear approximation of kornia's HSV hue shift). Two extras that DACS does not use and are off by
default: a random permutation of the colour channels and inversion ``x ← 1 − x``, each with its own probability —
photometric changes a digit keeps its class under (the embedded digits recipe uses them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

_GREY = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _uniform(n: int, low: float, high: float, like: Tensor) -> Tensor:
    """``(n, 1, 1, 1)`` draws from ``U(low, high)`` with the global generator of ``like``'s device."""
    return torch.rand(n, 1, 1, 1, device=like.device, dtype=like.dtype) * (high - low) + low


def _chosen(n: int, p: float, like: Tensor) -> Tensor:
    """``(n, 1, 1, 1)`` bool: which images an operation of probability ``p`` touches."""
    return torch.rand(n, 1, 1, 1, device=like.device) < p


def _grey(x: Tensor) -> Tensor:
    """``(N, 3, H, W)`` -> ``(N, 1, H, W)`` luma."""
    w = x.new_tensor(_GREY).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def rotate_hue(x: Tensor, turns: Tensor) -> Tensor:
    """Rotate the chroma (I, Q) plane of YIQ by ``2π · turns``; luma is unchanged.

    Args:
        x: ``(N, 3, H, W)`` RGB in ``[0, 1]``.
        turns: ``(N, 1, 1, 1)`` fractions of a full turn.

    Returns:
        ``(N, 3, H, W)`` RGB (not clamped).
    """
    to_yiq = x.new_tensor(_RGB_TO_YIQ)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    angle = 2 * math.pi * turns  # (N, 1, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    i, q = yiq[:, 1:2] * cos - yiq[:, 2:3] * sin, yiq[:, 1:2] * sin + yiq[:, 2:3] * cos
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), torch.cat([yiq[:, :1], i, q], 1))


def gaussian_blur(x: Tensor, sigma: Tensor, kernel: int) -> Tensor:
    """Blur each image with its own Gaussian (separable, reflect padding).

    Args:
        x: ``(N, C, H, W)``.
        sigma: ``(N,)`` standard deviations in pixels (> 0).
        kernel: odd kernel side.

    Returns:
        ``(N, C, H, W)``.
    """
    n, c, h, w = x.shape
    r = torch.arange(kernel, device=x.device, dtype=x.dtype) - (kernel - 1) / 2
    k = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N·C, kernel)
    pad = kernel // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)  # vertical
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)  # horizontal
    return y.reshape(n, c, h, w)


def blur_kernel_side(height: int, width: int) -> int:
    """DACS's kernel side: ``c = ⌈0.1 × side⌉``, or ``c − 1`` when ``c`` is even (the released formula
    ``⌊c − 0.5 + c mod 2⌋``, per axis; here of the shorter side), at least 3."""
    side = math.ceil(0.1 * min(height, width))
    return max(3, side if side % 2 else side - 1)


@dataclass(frozen=True)
class StrongAugment:
    """The augmentation of the module docstring; call it on a normalised ``(N, 3, H, W)`` batch.

    Args:
        jitter: strength ``s`` of brightness, contrast and saturation (0 = off).
        saturation: strength ``s_a`` of saturation alone, up to 1 (1: from grey to twice the colour); ``None`` = ``s``.
        hue: strength ``s_h`` of the hue rotation, in turns (0.25 = ±90°; 0 = off).
        jitter_p: probability that an image is colour-jittered.
        blur_p: probability that an image is blurred.
        blur_sigma: ``(low, high)`` of ``σ``, in pixels.
        channel_shuffle_p: probability of a random permutation of the colour channels.
        invert_p: probability of ``x ← 1 − x``.
        decisions: ``"image"``: each image decides by itself whether an operation applies; ``"batch"``: one decision
            per operation for the whole batch (the released DACS / DAFormer / MIC).
    """

    jitter: float = 0.25
    saturation: float | None = None
    hue: float = 0.25
    jitter_p: float = 0.8
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.15, 1.15)
    channel_shuffle_p: float = 0.0
    invert_p: float = 0.0
    decisions: Literal["image", "batch"] = "image"

    def __post_init__(self) -> None:
        if self.decisions not in ("image", "batch"):
            raise ValueError(f"StrongAugment.decisions: expected 'image' or 'batch', got {self.decisions!r}")
        for name in ("jitter_p", "blur_p", "channel_shuffle_p", "invert_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"StrongAugment.{name}: expected a probability in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.jitter < 1.0 or not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"StrongAugment: expected 0 <= jitter < 1 and 0 <= hue <= 0.5, got {self.jitter}, {self.hue}")
        if self.saturation is not None and not 0.0 <= self.saturation <= 1.0:
            raise ValueError(f"StrongAugment.saturation: expected a strength in [0, 1] or None, got {self.saturation}")
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"StrongAugment.blur_sigma: expected 0 < low <= high, got {self.blur_sigma}")

    def _chosen(self, n: int, p: float, like: Tensor) -> Tensor:
        """``(n, 1, 1, 1)`` bool: the images an operation of probability ``p`` touches (per :attr:`decisions`)."""
        return _chosen(n, p, like) if self.decisions == "image" else _chosen(1, p, like).expand(n, 1, 1, 1)

    def __call__(self, x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
        """Augment ``x`` (normalised with ``mean`` / ``std``, in ``[0, 1]`` units); same shape, dtype, normalisation
        and memory format.

        Random draws come from the global generator of ``x``'s device, which checkpoints save (kill-resume stays
        bit-identical).
        """
        if x.shape[1] != 3:
            raise ValueError(f"StrongAugment: expected (N, 3, H, W) RGB images, got {tuple(x.shape)}")
        m, s = x.new_tensor(mean).view(1, -1, 1, 1), x.new_tensor(std).view(1, -1, 1, 1)
        y = (x.float() * s.float() + m.float()).clamp(0, 1)
        n = y.shape[0]
        if self.jitter_p > 0 and (self.jitter > 0 or self.hue > 0 or self.saturation):
            on = self._chosen(n, self.jitter_p, y)
            j = self.jitter
            z = (y * _uniform(n, 1 - j, 1 + j, y)).clamp(0, 1)
            mu = _grey(z).mean((2, 3), keepdim=True)
            z = ((z - mu) * _uniform(n, 1 - j, 1 + j, y) + mu).clamp(0, 1)
            g = _grey(z)
            a = j if self.saturation is None else self.saturation
            z = ((z - g) * _uniform(n, 1 - a, 1 + a, y) + g).clamp(0, 1)
            if self.hue > 0:
                z = rotate_hue(z, _uniform(n, -self.hue, self.hue, y)).clamp(0, 1)
            y = torch.where(on, z, y)
        if self.channel_shuffle_p > 0:
            perm = torch.argsort(torch.rand(n, 3, device=y.device), 1)
            shuffled = torch.gather(y, 1, perm[:, :, None, None].expand_as(y))
            y = torch.where(self._chosen(n, self.channel_shuffle_p, y), shuffled, y)
        if self.invert_p > 0:
            y = torch.where(self._chosen(n, self.invert_p, y), 1 - y, y)
        if self.blur_p > 0:
            lo, hi = self.blur_sigma
            sigma = _uniform(n, lo, hi, y).view(n)
            blurred = gaussian_blur(y, sigma, blur_kernel_side(*y.shape[-2:]))
            y = torch.where(self._chosen(n, self.blur_p, y), blurred, y)
        out = ((y - m.float()) / s.float()).to(x.dtype)
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out  # the input's layout


__all__ = ["StrongAugment", "blur_kernel_side", "gaussian_blur", "rotate_hue"]
