"""Multi-kernel maximum mean discrepancy (DAN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from domadapt.losses.base import AlignmentLoss, as_samples
from domadapt.losses.functional import mean_sq_distance, mmd_linear, mmd_quadratic, pairwise_sq_dists


def _median(v: Tensor) -> Tensor:
    """Median of a 1-D tensor, averaging the two middle values for even sizes (as NumPy does)."""
    v = v.sort().values
    n = v.numel()
    return 0.5 * (v[(n - 1) // 2] + v[n // 2])


class MMDLoss(AlignmentLoss):
    """Multi-kernel MMD^2 between source and target features (DAN).

    Long et al., "Learning Transferable Features with Deep Adaptation Networks", ICML 2015,
    https://arxiv.org/abs/1502.02791; estimators from Gretton et al., "A Kernel Two-Sample Test",
    JMLR 2012, https://jmlr.org/papers/v13/gretton12a.html.

    ``k(x, y) = (1/M) sum_m exp(-||x - y||^2 / (2 m_m sigma^2))`` with ``sigma^2`` the mean (or
    median) squared distance between distinct samples of the pooled batch (detached, recomputed
    every call) and multipliers ``m_m`` (default ``2^-2 .. 2^2``); equal kernel weights instead of
    DAN's learned ones. Estimators:

    * ``"quadratic"``: ``mean K_ss + mean K_tt - 2 mean K_st`` (``unbiased=True`` drops the
      diagonals of ``K_ss``, ``K_tt``);
    * ``"linear"``: Gretton's linear-time estimate over disjoint pairs of the first
      ``min(N, M)`` samples of each domain (bandwidth from the same pairs for ``"median"``).

    Segmentation maps ``(N, D, H, W)`` are treated as ``N*H*W`` pixel samples; at most
    ``max_samples`` per domain are kept by a regular stride (deterministic, so ``loss(x, x) = 0``).

    Args:
        kernel_multipliers: bandwidth multipliers ``m_m``.
        bandwidth: ``"mean"`` or ``"median"`` pairwise squared distance as ``sigma^2``.
        estimator: ``"quadratic"`` or ``"linear"``.
        unbiased: unbiased quadratic estimate (ignored by ``"linear"``).
        max_samples: cap on samples per domain (pixels of segmentation maps).

    Shape:
        source ``(N, D)`` or ``(N, D, H, W)``, target ``(M, D)`` or ``(M, D, H', W')`` -> ``()``.
    """

    input_kind = "features"
    supports = frozenset({"classification", "segmentation"})
    is_divergence = True

    def __init__(
        self,
        kernel_multipliers: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
        bandwidth: Literal["mean", "median"] = "mean",
        estimator: Literal["quadratic", "linear"] = "quadratic",
        unbiased: bool = False,
        max_samples: int = 1024,
    ) -> None:
        super().__init__()
        if estimator not in ("quadratic", "linear"):
            raise ValueError(f"MMDLoss: estimator={estimator!r}; expected 'quadratic' or 'linear'")
        if bandwidth not in ("mean", "median"):
            raise ValueError(f"MMDLoss: bandwidth={bandwidth!r}; expected 'mean' or 'median'")
        self.kernel_multipliers = tuple(float(m) for m in kernel_multipliers)
        self.bandwidth, self.estimator, self.unbiased = bandwidth, estimator, unbiased
        self.max_samples = max_samples

    def _subsample(self, x: Tensor) -> Tensor:
        x = as_samples(x)  # (n, D)
        stride = -(-x.shape[0] // self.max_samples)  # ceil
        return x[::stride]

    def base_bandwidth(self, x: Tensor, y: Tensor) -> Tensor:
        """``sigma^2``: mean or median squared distance over distinct pairs of the pooled samples."""
        with torch.no_grad():
            z = torch.cat([x, y])
            if self.bandwidth == "mean":
                return mean_sq_distance(z)
            if self.estimator == "linear":  # stay linear-time: the distances the estimator evaluates
                half = min(x.shape[0], y.shape[0]) // 2
                x1, x2, y1, y2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2], y[0 : 2 * half : 2], y[1 : 2 * half : 2]
                d2 = torch.cat([(a - b).pow(2).sum(1) for a, b in ((x1, x2), (y1, y2), (x1, y2), (x2, y1))])
                return _median(d2)
            d2 = pairwise_sq_dists(z, z)
            off = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
            return _median(d2[off])

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(source, target)
        x, y = self._subsample(source), self._subsample(target)
        if min(x.shape[0], y.shape[0]) < 2:
            raise ValueError(
                f"MMDLoss: got {x.shape[0]} source and {y.shape[0]} target samples; expected at least 2 of each"
            )
        # clamp: a batch whose samples all coincide has sigma^2 = 0 (and any bandwidth gives MMD = 0)
        sigma2 = self.base_bandwidth(x, y).clamp_min(1e-12)
        sigmas2 = sigma2 * torch.tensor(self.kernel_multipliers, dtype=x.dtype, device=x.device)
        if self.estimator == "linear":
            return mmd_linear(x, y, sigmas2)
        return mmd_quadratic(x, y, sigmas2, unbiased=self.unbiased)


__all__ = ["MMDLoss"]
