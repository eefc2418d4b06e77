"""Correlation alignment (Deep CORAL)."""

from __future__ import annotations

from torch import Tensor

from domadapt.losses.base import AlignmentLoss, as_samples
from domadapt.losses.functional import coral


class CORALLoss(AlignmentLoss):
    """Deep CORAL: match second-order statistics of source and target features.

    Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV-W 2016,
    https://arxiv.org/abs/1607.01719.

    ``L = ||C_s - C_t||_F^2 / (4 d^2)`` with ``C = (X^T X - (1^T X)^T (1^T X) / n) / (n - 1)`` the
    unbiased covariance of each domain's ``(n, d)`` feature matrix.

    Segmentation maps ``(N, d, H, W)`` are treated as ``N*H*W`` pixel samples (a covariance of a
    few pooled images would be nearly singular).

    Shape:
        source ``(N, d)`` or ``(N, d, H, W)``, target ``(M, d)`` or ``(M, d, H', W')``, with at
        least 2 samples each -> ``()``.
    """

    input_kind = "features"
    supports = frozenset({"classification", "segmentation"})
    is_divergence = True

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        self.check_inputs(source, target)
        x_s, x_t = as_samples(source), as_samples(target)  # (n_s, d), (n_t, d)
        for role, x in (("source", x_s), ("target", x_t)):
            if x.shape[0] < 2:
                raise ValueError(
                    f"CORALLoss: {role} has {x.shape[0]} sample; expected at least 2 to estimate a covariance"
                )
        return coral(x_s, x_t)


__all__ = ["CORALLoss"]
