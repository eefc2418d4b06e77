"""Each formula against a NumPy / SciPy / naive-loop transcription."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from domadapt.losses import (
    ClassifierDiscrepancyLoss,
    CORALLoss,
    EntropyLoss,
    MinimumClassConfusionLoss,
    MMDLoss,
)
from domadapt.losses import functional as LF

RNG = np.random.default_rng(0)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def np_softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_kernel(a: np.ndarray, b: np.ndarray, sigmas2) -> float:
    return float(np.mean([math.exp(-np.sum((a - b) ** 2) / (2 * s)) for s in sigmas2]))


# ----------------------------------------------------------------------------- entropy


def test_entropy_matches_scipy():
    p = np_softmax(RNG.normal(size=(7, 5)) * 3)
    p[0] = [1, 0, 0, 0, 0]  # 0 log 0 = 0
    ref = np.array([scipy.stats.entropy(row) for row in p])
    np.testing.assert_allclose(LF.entropy(t(p), dim=1).numpy(), ref, rtol=1e-12)
    z = RNG.normal(size=(7, 5)) * 30  # large logits: the log_softmax path stays finite
    ref = np.array([scipy.stats.entropy(row) for row in np_softmax(z)])
    np.testing.assert_allclose(LF.entropy_from_logits(t(z), dim=1).numpy(), ref, atol=1e-10)


def test_entropy_has_finite_gradient_at_zero_probability():
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    LF.entropy(p).sum().backward()
    assert torch.isfinite(p.grad).all()


def test_entropy_loss_is_pixel_mean_of_scipy_entropy():
    z = RNG.normal(size=(2, 4, 3, 5))
    p = np_softmax(z)
    ref = np.mean([scipy.stats.entropy(p[n, :, i, j]) for n in range(2) for i in range(3) for j in range(5)])
    assert float(EntropyLoss()(None, t(z))) == pytest.approx(ref, rel=1e-10)
    assert float(EntropyLoss(normalize=True)(None, t(z))) == pytest.approx(ref / math.log(4), rel=1e-10)


def test_self_information_per_channel_and_sum():
    p = np_softmax(RNG.normal(size=(2, 6, 4, 4)))
    info = LF.self_information(t(p), dim=1).numpy()
    np.testing.assert_allclose(info, -p * np.log(p) / np.log(6), rtol=1e-12)
    ent = np.apply_along_axis(scipy.stats.entropy, 1, p)
    np.testing.assert_allclose(info.sum(1), ent / np.log(6), rtol=1e-10)


def test_entropy_weights():
    p = np_softmax(RNG.normal(size=(5, 3)))
    ref = 1 + np.exp(-np.array([scipy.stats.entropy(r) for r in p]))
    np.testing.assert_allclose(LF.entropy_weights(t(p)).numpy(), ref, rtol=1e-12)


# ----------------------------------------------------------------------------- kernels / MMD


def test_pairwise_and_mean_sq_distances_match_loops():
    x, y = RNG.normal(size=(6, 4)), RNG.normal(size=(3, 4)) + 2
    ref = np.array([[np.sum((a - b) ** 2) for b in y] for a in x])
    np.testing.assert_allclose(LF.pairwise_sq_dists(t(x), t(y)).numpy(), ref, rtol=1e-10)
    mean_ref = np.mean([np.sum((x[i] - x[j]) ** 2) for i in range(6) for j in range(6) if i != j])
    assert float(LF.mean_sq_distance(t(x))) == pytest.approx(mean_ref, rel=1e-12)


def test_gaussian_kernel_matrix_matches_loop():
    x, y, sig = RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3)), [0.5, 2.0, 8.0]
    ref = np.array([[np_kernel(a, b, sig) for b in y] for a in x])
    np.testing.assert_allclose(LF.gaussian_kernel_matrix(t(x), t(y), sig).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("unbiased", [False, True])
def test_mmd_quadratic_matches_explicit_loops(unbiased):
    x, y, sig = RNG.normal(size=(7, 3)), RNG.normal(size=(5, 3)) + 0.7, [1.0, 4.0]
    m, n = len(x), len(y)
    if unbiased:
        sxx = sum(np_kernel(x[i], x[j], sig) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        syy = sum(np_kernel(y[i], y[j], sig) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    else:
        sxx = sum(np_kernel(a, b, sig) for a in x for b in x) / m**2
        syy = sum(np_kernel(a, b, sig) for a in y for b in y) / n**2
    sxy = sum(np_kernel(a, b, sig) for a in x for b in y) / (m * n)
    got = LF.mmd_quadratic(t(x), t(y), sig, unbiased=unbiased)
    assert float(got) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)


def test_mmd_linear_matches_explicit_loop():
    x, y, sig = RNG.normal(size=(9, 3)), RNG.normal(size=(8, 3)) + 0.5, [0.5, 2.0]
    n = min(len(x), len(y)) // 2  # 4 disjoint pairs; the 9th source sample is unused
    hs = []
    for i in range(n):
        a, a2, b, b2 = x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1]
        hs.append(np_kernel(a, a2, sig) + np_kernel(b, b2, sig) - np_kernel(a, b2, sig) - np_kernel(a2, b, sig))
    assert float(LF.mmd_linear(t(x), t(y), sig)) == pytest.approx(np.mean(hs), rel=1e-10)


@pytest.mark.parametrize("bandwidth", ["mean", "median"])
def test_mmd_loss_quadratic_end_to_end(bandwidth):
    x, y = RNG.normal(size=(6, 4)), RNG.normal(size=(5, 4)) * 2
    z = np.concatenate([x, y])
    d2 = [np.sum((z[i] - z[j]) ** 2) for i in range(11) for j in range(11) if i != j]
    base = np.mean(d2) if bandwidth == "mean" else np.median(d2)
    sig = [base * m for m in (0.25, 0.5, 1, 2, 4)]
    ref = (
        sum(np_kernel(a, b, sig) for a in x for b in x) / 36
        + sum(np_kernel(a, b, sig) for a in y for b in y) / 25
        - 2 * sum(np_kernel(a, b, sig) for a in x for b in y) / 30
    )
    assert float(MMDLoss(bandwidth=bandwidth)(t(x), t(y))) == pytest.approx(ref, rel=1e-8)


def test_mmd_loss_linear_median_uses_the_evaluated_pairs():
    x, y = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4)) + 1
    pairs = [(x[0::2], x[1::2]), (y[0::2], y[1::2]), (x[0::2], y[1::2]), (x[1::2], y[0::2])]
    base = np.median(np.concatenate([np.sum((a - b) ** 2, axis=1) for a, b in pairs]))
    sig = [base * m for m in (1.0, 2.0)]
    ref = np.mean(
        [
            np_kernel(x[2 * i], x[2 * i + 1], sig)
            + np_kernel(y[2 * i], y[2 * i + 1], sig)
            - np_kernel(x[2 * i], y[2 * i + 1], sig)
            - np_kernel(x[2 * i + 1], y[2 * i], sig)
            for i in range(3)
        ]
    )
    loss = MMDLoss(kernel_multipliers=(1.0, 2.0), bandwidth="median", estimator="linear")
    assert float(loss(t(x), t(y))) == pytest.approx(ref, rel=1e-8)


def test_mmd_loss_on_maps_uses_strided_pixels():
    x, y = RNG.normal(size=(2, 3, 4, 4)), RNG.normal(size=(2, 3, 4, 4)) + 1
    loss = MMDLoss(max_samples=8)  # 32 pixels -> every 4th
    px, py = x.transpose(0, 2, 3, 1).reshape(-1, 3)[::4], y.transpose(0, 2, 3, 1).reshape(-1, 3)[::4]
    assert float(loss(t(x), t(y))) == pytest.approx(float(MMDLoss()(t(px), t(py))), rel=1e-10)


# ----------------------------------------------------------------------------- CORAL


def test_covariance_and_coral_match_numpy():
    xs, xt = RNG.normal(size=(9, 4)), RNG.normal(size=(6, 4)) * [1, 2, 3, 0.5]
    np.testing.assert_allclose(LF.covariance(t(xs)).numpy(), np.cov(xs, rowvar=False), rtol=1e-10)
    ref = np.sum((np.cov(xs, rowvar=False) - np.cov(xt, rowvar=False)) ** 2) / (4 * 4**2)
    assert float(CORALLoss()(t(xs), t(xt))) == pytest.approx(ref, rel=1e-10)


def test_coral_on_maps_uses_pixels_as_samples():
    xs, xt = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(1, 3, 6, 2)) * 2
    ps, pt = xs.transpose(0, 2, 3, 1).reshape(-1, 3), xt.transpose(0, 2, 3, 1).reshape(-1, 3)
    ref = np.sum((np.cov(ps, rowvar=False) - np.cov(pt, rowvar=False)) ** 2) / (4 * 9)
    assert float(CORALLoss()(t(xs), t(xt))) == pytest.approx(ref, rel=1e-10)


# ----------------------------------------------------------------------------- MCC / MCD / CDAN


def np_mcc(z: np.ndarray, temp: float) -> float:
    """The paper's steps (Jin et al. 2020, eqs. 1-6), one by one."""
    b, k = z.shape
    y = np_softmax(z / temp)  # eq. 1
    h = np.array([-sum(y[i, j] * math.log(y[i, j]) for j in range(k)) for i in range(b)])  # eq. 3
    w = b * (1 + np.exp(-h)) / np.sum(1 + np.exp(-h))  # eq. 4
    c = np.zeros((k, k))
    for j in range(k):  # eq. 5: C_jj' = y_.j^T W y_.j'
        for jj in range(k):
            c[j, jj] = sum(y[i, j] * w[i] * y[i, jj] for i in range(b))
    c_norm = c / c.sum(axis=0, keepdims=True)  # eq. 6 (category normalisation)
    return sum(abs(c_norm[j, jj]) for j in range(k) for jj in range(k) if j != jj) / k


@pytest.mark.parametrize("temp", [1.0, 2.5])
def test_mcc_matches_paper_steps(temp):
    z = RNG.normal(size=(8, 4)) * 2
    assert float(LF.mcc(t(z), temp)) == pytest.approx(np_mcc(z, temp), rel=1e-10)
    assert float(MinimumClassConfusionLoss(temp)(None, t(z))) == pytest.approx(np_mcc(z, temp), rel=1e-10)


def test_mcc_is_small_for_confident_distinct_predictions():
    confident = torch.eye(4).repeat(2, 1) * 20  # each sample sure of a different class
    confused = torch.zeros(8, 4)
    assert float(LF.mcc(confident)) < 0.05 < float(LF.mcc(confused))


def test_l1_discrepancy_and_mcd_loss():
    a, b = RNG.normal(size=(3, 5, 2, 2)), RNG.normal(size=(3, 5, 2, 2))
    ref = np.mean(np.abs(np_softmax(a) - np_softmax(b)))
    assert float(LF.l1_discrepancy(t(a), t(b))) == pytest.approx(ref, rel=1e-10)
    unused = (t(a[:1]) * 0, t(a[:1]) * 0)  # the source tuple does not enter the value
    assert float(ClassifierDiscrepancyLoss()(unused, (t(a), t(b)))) == pytest.approx(ref, rel=1e-10)


def test_multilinear_maps_match_einsum():
    f, g = RNG.normal(size=(4, 3)), np_softmax(RNG.normal(size=(4, 5)))
    ref = np.einsum("nd,nk->ndk", f, g).reshape(4, 15)
    np.testing.assert_allclose(LF.multilinear_map(t(f), t(g)).numpy(), ref, rtol=1e-12)
    rf, rg = RNG.normal(size=(3, 7)), RNG.normal(size=(5, 7))
    ref = (f @ rf) * (g @ rg) / math.sqrt(7)
    np.testing.assert_allclose(LF.randomized_multilinear_map(t(f), t(g), t(rf), t(rg)).numpy(), ref, rtol=1e-12)
