"""Pure maths behind the alignment losses: no state, no parameters, tensors in and out.

Every function here is tested against a NumPy / naive-loop transcription of its formula.
Conventions: class / feature axis is ``dim=1``; samples are rows of ``(N, D)`` matrices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# ----------------------------------------------------------------------------- entropy


def entropy(probs: Tensor, dim: int = 1) -> Tensor:
    """Shannon entropy ``H(p) = -sum_c p_c log p_c`` (nats) along ``dim``.

    ``0 log 0`` is taken as 0 with a finite gradient (``log`` of ``p`` clamped at the smallest
    positive float).

    Shape:
        probs ``(N, K, *)`` -> ``(N, *)`` (``dim`` removed).
    """
    tiny = torch.finfo(probs.dtype).tiny
    return -(probs * probs.clamp_min(tiny).log()).sum(dim)


def entropy_from_logits(logits: Tensor, dim: int = 1) -> Tensor:
    """Entropy of ``softmax(logits)`` computed with ``log_softmax`` (stable for large logits).

    Shape:
        logits ``(N, K, *)`` -> ``(N, *)``.
    """
    log_p = F.log_softmax(logits, dim=dim)
    return -(log_p.exp() * log_p).sum(dim)


def self_information(probs: Tensor, dim: int = 1) -> Tensor:
    """AdvEnt's weighted self-information map ``I_c = -p_c log p_c / log C`` (Vu et al. 2019).

    Summing ``I`` over ``dim`` gives the entropy normalised to ``[0, 1]``.

    Shape:
        probs ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """
    tiny = torch.finfo(probs.dtype).tiny
    return -(probs * probs.clamp_min(tiny).log()) / math.log(probs.shape[dim])


def entropy_weights(probs: Tensor) -> Tensor:
    """CDAN+E / MCC certainty weights ``w_i = 1 + exp(-H(p_i))`` (un-normalised).

    Shape:
        probs ``(N, K)`` -> ``(N,)``.
    """
    return 1.0 + torch.exp(-entropy(probs, dim=1))


# ----------------------------------------------------------------------------- kernels / MMD


def pairwise_sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``||x_i - y_j||^2`` via the expansion ``|x|^2 + |y|^2 - 2 x.y``.

    The expansion needs ``O(N M)`` memory (not ``O(N M D)``); tiny negatives from cancellation are
    clamped to 0.

    Shape:
        x ``(N, D)``, y ``(M, D)`` -> ``(N, M)``.
    """
    xx = x.pow(2).sum(1, keepdim=True)  # (N, 1)
    yy = y.pow(2).sum(1, keepdim=True)  # (M, 1)
    return (xx + yy.T - 2.0 * x @ y.T).clamp_min(0.0)


def mean_sq_distance(z: Tensor) -> Tensor:
    """Mean of ``||z_i - z_j||^2`` over ordered pairs ``i != j``, in linear time.

    Uses ``sum_{i,j} ||z_i - z_j||^2 = 2 n sum_i ||z_i||^2 - 2 ||sum_i z_i||^2``.

    Shape:
        z ``(n, D)`` with ``n >= 2`` -> ``()``.
    """
    n = z.shape[0]
    total = 2 * n * z.pow(2).sum() - 2 * z.sum(0).pow(2).sum()
    return total / (n * (n - 1))


def gaussian_kernel_matrix(x: Tensor, y: Tensor, sigmas2: Tensor | Sequence[float]) -> Tensor:
    """Multi-kernel Gaussian Gram matrix, equal weights over bandwidths.

    ``k(x, y) = (1/M) sum_m exp(-||x - y||^2 / (2 sigma_m^2))``

    Args:
        x: first sample set.
        y: second sample set.
        sigmas2: the ``M`` bandwidths ``sigma_m^2``.

    Shape:
        x ``(N, D)``, y ``(M', D)``, sigmas2 ``(M,)`` -> ``(N, M')``.
    """
    sigmas2 = torch.as_tensor(sigmas2, dtype=x.dtype, device=x.device)
    d2 = pairwise_sq_dists(x, y)  # (N, M')
    return torch.exp(-d2.unsqueeze(0) / (2.0 * sigmas2.view(-1, 1, 1))).mean(0)


def mmd_quadratic(x: Tensor, y: Tensor, sigmas2: Tensor | Sequence[float], unbiased: bool = False) -> Tensor:
    """Quadratic-time MMD^2 estimate (Gretton et al. 2012, JMLR 13, Lemma 6 and eq. for MMD_b).

    Biased:   ``mean(K_xx) + mean(K_yy) - 2 mean(K_xy)`` (all pairs; >= 0, zero when x == y).
    Unbiased: diagonal terms dropped from ``K_xx`` and ``K_yy`` (``1/(n(n-1)) sum_{i!=j}``); the
    cross term keeps all pairs. Can be slightly negative.

    Shape:
        x ``(N, D)``, y ``(M, D)`` -> ``()``.
    """
    kxx = gaussian_kernel_matrix(x, x, sigmas2)
    kyy = gaussian_kernel_matrix(y, y, sigmas2)
    kxy = gaussian_kernel_matrix(x, y, sigmas2)
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    n, m = x.shape[0], y.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


def mmd_linear(x: Tensor, y: Tensor, sigmas2: Tensor | Sequence[float]) -> Tensor:
    """Linear-time MMD^2 estimate over disjoint pairs (Gretton et al. 2012, JMLR 13, §6; Long et al. 2015 DAN).

    With ``n = min(N, M)`` and ``z_i = (x_i, y_i)``, average over ``i = 0, 2, 4, ...``
    ``h(z_i, z_{i+1}) = k(x_i, x_{i+1}) + k(y_i, y_{i+1}) - k(x_i, y_{i+1}) - k(x_{i+1}, y_i)``.

    Shape:
        x ``(N, D)``, y ``(M, D)`` with ``min(N, M) >= 2`` -> ``()``.
    """
    half = min(x.shape[0], y.shape[0]) // 2
    x1, x2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2]  # (half, D) each
    y1, y2 = y[0 : 2 * half : 2], y[1 : 2 * half : 2]
    sigmas2 = torch.as_tensor(sigmas2, dtype=x.dtype, device=x.device).view(-1, 1)

    def k(a: Tensor, b: Tensor) -> Tensor:  # row-wise kernel, (half,)
        return torch.exp(-(a - b).pow(2).sum(1) / (2.0 * sigmas2)).mean(0)

    return (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean()


# ----------------------------------------------------------------------------- CORAL


def covariance(x: Tensor) -> Tensor:
    """Unbiased sample covariance ``(X^T X - (1^T X)^T (1^T X) / n) / (n - 1)`` (= ``np.cov(x.T)``).

    Shape:
        x ``(n, D)`` with ``n >= 2`` -> ``(D, D)``.
    """
    xc = x - x.mean(0, keepdim=True)
    return xc.T @ xc / (x.shape[0] - 1)


def coral(source: Tensor, target: Tensor) -> Tensor:
    """CORAL distance ``||C_s - C_t||_F^2 / (4 d^2)`` (Sun & Saenko 2016).

    Shape:
        source ``(N, d)``, target ``(M, d)`` -> ``()``.
    """
    d = source.shape[1]
    return (covariance(source) - covariance(target)).pow(2).sum() / (4.0 * d * d)


# ----------------------------------------------------------------------------- MCC / MCD


def mcc(logits: Tensor, temperature: float = 2.5) -> Tensor:
    """Minimum Class Confusion (Jin et al. 2020, arXiv 1912.03699, eqs. 1-6).

    ``Y = softmax(Z / T)``; ``H_i = H(Y_i)``; ``W_ii = B (1 + exp(-H_i)) / sum_j (1 + exp(-H_j))``
    (detached); ``C = Y^T W Y``; ``C~_jk = C_jk / sum_j' C_j'k`` (category normalisation);
    ``L = (1/K) sum_j sum_{k != j} |C~_jk|``.

    Shape:
        logits ``(B, K)`` -> ``()``.
    """
    b, k = logits.shape
    probs = F.softmax(logits / temperature, dim=1)  # (B, K)
    w = entropy_weights(probs).detach()
    w = b * w / w.sum()  # (B,)
    confusion = probs.T @ (w.unsqueeze(1) * probs)  # (K, K)
    confusion = confusion / confusion.sum(dim=0, keepdim=True)
    return (confusion.sum() - confusion.trace()) / k


def l1_discrepancy(logits1: Tensor, logits2: Tensor) -> Tensor:
    """MCD classifier discrepancy ``mean |softmax(a) - softmax(b)|`` over all elements.

    Shape:
        logits ``(N, K)`` or ``(N, K, H, W)`` (both the same) -> ``()``.
    """
    return (F.softmax(logits1, dim=1) - F.softmax(logits2, dim=1)).abs().mean()


# ----------------------------------------------------------------------------- CDAN


def multilinear_map(features: Tensor, probs: Tensor) -> Tensor:
    """CDAN multilinear map ``f ⊗ g`` flattened: entry ``d * K + k`` is ``f_d g_k``.

    Shape:
        features ``(N, D)``, probs ``(N, K)`` -> ``(N, D * K)``.
    """
    return (features.unsqueeze(2) * probs.unsqueeze(1)).flatten(1)  # (N, D, K) -> (N, D*K)


def randomized_multilinear_map(features: Tensor, probs: Tensor, rf: Tensor, rg: Tensor) -> Tensor:
    """CDAN randomized map ``(R_f f) ⊙ (R_g g) / sqrt(d_out)`` (Long et al. 2018, eq. 6).

    Shape:
        features ``(N, D)``, probs ``(N, K)``, rf ``(D, d_out)``, rg ``(K, d_out)`` -> ``(N, d_out)``.
    """
    return (features @ rf) * (probs @ rg) / math.sqrt(rf.shape[1])


__all__ = [
    "coral",
    "covariance",
    "entropy",
    "entropy_from_logits",
    "entropy_weights",
    "gaussian_kernel_matrix",
    "l1_discrepancy",
    "mcc",
    "mean_sq_distance",
    "mmd_linear",
    "mmd_quadratic",
    "multilinear_map",
    "pairwise_sq_dists",
    "randomized_multilinear_map",
    "self_information",
]
