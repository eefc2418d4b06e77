"""The pseudo-label terms against NumPy transcriptions of their formulas; 0 (not NaN) when nothing is kept; the hard
term is PyTorch's mean cross-entropy to the last bit whenever a label is kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domadapt.losses.pseudo_label import pseudo_label_cross_entropy, soft_pseudo_label_cross_entropy
from domadapt.structures import IGNORE_INDEX


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 6, 5)])  # (N, K) classification, (N, K, H, W) segmentation
def test_hard_term_against_numpy(shape):
    rng = np.random.default_rng(0)
    z = rng.normal(size=shape) * 3
    y = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    y.flat[::3] = 255  # every third sample/pixel not kept
    logp = np.moveaxis(np_log_softmax(z), 1, -1)  # (N[, H, W], K)
    kept = y != 255
    expected = -np.take_along_axis(logp, np.where(kept, y, 0)[..., None], -1)[..., 0][kept].sum() / kept.sum()
    got = pseudo_label_cross_entropy(torch.tensor(z), torch.tensor(y))
    assert got.shape == () and float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 6, 5)])
def test_hard_term_is_torch_mean_cross_entropy_bit_for_bit(shape):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(shape, generator=g)
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    y[torch.rand(y.shape, generator=g) < 0.4] = 255
    assert torch.equal(pseudo_label_cross_entropy(z, y), F.cross_entropy(z, y, ignore_index=255))


def test_nothing_kept_gives_zero_and_zero_gradient():
    z = torch.randn(4, 3, 2, 2, requires_grad=True)
    loss = pseudo_label_cross_entropy(z, torch.full((4, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))
    keep = torch.zeros(4, dtype=torch.bool)
    soft = soft_pseudo_label_cross_entropy(torch.randn(4, 3), torch.full((4, 3), 1 / 3), keep)
    assert soft.item() == 0.0 and math.isfinite(soft.item())


def test_ignore_index_is_the_label_convention_of_the_package():
    z, y = torch.randn(5, 3), torch.tensor([0, 7, 2, 7, 1])
    assert pseudo_label_cross_entropy.__defaults__ == (IGNORE_INDEX,)
    assert torch.equal(pseudo_label_cross_entropy(z, y, ignore_index=7), F.cross_entropy(z, y, ignore_index=7))


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4)])
def test_soft_term_against_numpy(shape):
    rng = np.random.default_rng(2)
    z = rng.normal(size=shape)
    q = np.moveaxis(rng.dirichlet(np.ones(shape[1]), (shape[0], *shape[2:])), -1, 1)  # sums to 1 over K
    keep = rng.random((shape[0], *shape[2:])) < 0.6
    expected = -(q * np_log_softmax(z)).sum(1)[keep].mean()
    got = soft_pseudo_label_cross_entropy(torch.from_numpy(z), torch.from_numpy(q), torch.from_numpy(keep))
    assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-10)
