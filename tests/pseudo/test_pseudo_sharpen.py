"""Temperature sharpening against a NumPy reference, its limits, and bad temperatures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domadapt.pseudo.sharpen import sharpen


def numpy_sharpen(p: np.ndarray, t: float, axis: int = 1) -> np.ndarray:
    q = p.astype(np.float64) ** (1.0 / t)
    return q / q.sum(axis, keepdims=True)


@pytest.mark.parametrize("t", [0.25, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 3, 3)])
def test_matches_numpy_reference(t, shape):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(shape[1]), size=(shape[0], *shape[2:]))  # (N, [H, W,] K)
    p = np.moveaxis(p, -1, 1)  # classes on axis 1
    got = sharpen(torch.from_numpy(p), t)
    assert isinstance(got, torch.Tensor) and got.shape == p.shape
    np.testing.assert_allclose(got.numpy(), numpy_sharpen(p, t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sharpen(p, t), numpy_sharpen(p, t), rtol=1e-10, atol=1e-12)  # NumPy in, NumPy out


def test_low_temperature_sharpens_towards_the_argmax_and_keeps_it():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    cold = sharpen(p, 0.05)
    assert torch.equal(cold.argmax(1), p.argmax(1))
    assert (cold.max(1).values > 0.99).all() and (sharpen(p, 0.5).max(1).values > p.max(1).values).all()
    assert (sharpen(p, 3.0).max(1).values < p.max(1).values).all()  # T > 1 flattens
    np.testing.assert_allclose(sharpen(p, 0.5).sum(1), 1.0, rtol=1e-6)


def test_zero_probabilities_stay_zero_and_other_dims_work():
    p = torch.tensor([[0.0, 0.25, 0.75]])
    out = sharpen(p, 0.5)
    assert out[0, 0] == 0 and torch.allclose(out, torch.tensor([[0.0, 0.1, 0.9]]))
    np.testing.assert_allclose(sharpen(p.T, 0.5, dim=0).T, out)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
def test_non_positive_temperature_is_a_one_line_error(t):
    with pytest.raises(ValueError, match=r"sharpen.temperature: expected T > 0, got"):
        sharpen(torch.ones(1, 2) / 2, t)
