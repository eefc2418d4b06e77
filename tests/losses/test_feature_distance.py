"""DAFormer's thing-class ImageNet feature distance against NumPy transcriptions of its rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domadapt.structures import NetOutput
from domadapt.losses.feature_distance import (
    CITYSCAPES_THINGS,
    ImageNetFeatureDistance,
    downscale_labels,
    masked_feature_distance,
)
from tests.conftest import TinySegNet


def numpy_downscale(gt: np.ndarray, s: int, min_ratio: float, k: int, ignore: int = 255) -> np.ndarray:
    """DAFormer@e6f6e04 mmseg/utils/utils.py:18-39 in NumPy: one-hot with ignore as class k, s x s cell means, the
    arg-max (first on ties) and its share; ignore where the arg-max is k or the share is below min_ratio."""
    n, h, w = gt.shape
    y = np.where(gt == ignore, k, gt)
    out = np.empty((n, h // s, w // s), np.int64)
    for b in range(n):
        for i in range(h // s):
            for j in range(w // s):
                cell = y[b, i * s:(i + 1) * s, j * s:(j + 1) * s].ravel()
                share = np.bincount(cell, minlength=k + 1) / cell.size
                c = int(np.argmax(share))
                out[b, i, j] = ignore if c == k or share[c] < min_ratio else c
    return out


@pytest.mark.parametrize("s,min_ratio", [(4, 0.75), (2, 0.5), (8, 0.75)])
def test_downscale_labels_matches_daformer_rule(s, min_ratio):
    rng = np.random.default_rng(s)
    blocks = rng.integers(0, 5, (2, 6, 5)).repeat(4, 1).repeat(4, 2)  # mostly pure 4x4 regions
    gt = np.where(rng.random(blocks.shape) < 0.15, rng.integers(0, 5, blocks.shape), blocks)
    gt = np.where(rng.random(gt.shape) < 0.1, 255, gt)[:, :, :19]  # width 19: not a multiple of s
    ours = downscale_labels(torch.from_numpy(gt), s, min_ratio, num_classes=5)
    np.testing.assert_array_equal(ours.numpy(), numpy_downscale(gt, s, min_ratio, 5))


def test_masked_feature_distance_matches_numpy():
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=(2, 7, 3, 4)), rng.normal(size=(2, 7, 3, 4))
    mask = rng.random((2, 3, 4)) < 0.5
    ref = np.sqrt(((f - g) ** 2).sum(1))[mask].mean()
    ours = masked_feature_distance(torch.from_numpy(f), torch.from_numpy(g), torch.from_numpy(mask))
    assert float(ours) == pytest.approx(ref, rel=1e-12)
    assert float(masked_feature_distance(torch.from_numpy(f), torch.from_numpy(g))) == pytest.approx(
        np.sqrt(((f - g) ** 2).sum(1)).mean(), rel=1e-12)


class FakeImageNetNet(TinySegNet):
    """TinySegNet whose "encoder" is its body at 1/4 resolution, declared as holding ImageNet weights."""

    imagenet_encoder = True

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(self.body(x), 4)

    def forward_with_encoder(self, x: torch.Tensor):
        f = self.body(x)
        return NetOutput(self.head(f), f), torch.nn.functional.avg_pool2d(f, 4)


def test_feature_distance_is_lambda_times_thing_pixel_mean_against_the_frozen_copy():
    torch.manual_seed(0)
    net = FakeImageNetNet()
    fd = ImageNetFeatureDistance(net, classes=(2, 3), scale_min_ratio=0.75, weight=0.005)
    with torch.no_grad():  # the student moves away from the copy taken at construction
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 3, 16, 24)
    labels = torch.randint(0, 4, (2, 4, 6)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    f = net.encoder_features(x)
    value = fd(f, x, labels)
    f0 = fd.reference_features(x)
    small = numpy_downscale(labels.numpy(), 4, 0.75, 4)
    mask = np.isin(small, (2, 3))
    ref = 0.005 * np.sqrt(((f.detach().numpy() - f0.numpy()) ** 2).sum(1))[mask].mean()
    assert float(value.detach()) == pytest.approx(ref, rel=1e-5)
    value.backward()
    assert all(p.grad is None for p in fd.reference.parameters())
    assert net.body[0].weight.grad is not None and net.body[0].weight.grad.abs().sum() > 0


def test_feature_distance_reference_is_frozen_and_computed_in_eval_mode():
    fd = ImageNetFeatureDistance(FakeImageNetNet())
    fd.train()
    x = torch.randn(3, 3, 8, 8) * 2 + 1
    with torch.no_grad():
        fd.reference.eval()
        expected = fd.reference.encoder_features(x)  # BatchNorm with running statistics
        fd.reference.train()
    torch.testing.assert_close(fd.reference_features(x), expected)
    assert fd.reference.training and not any(p.requires_grad for p in fd.reference.parameters())
    assert fd.classes == CITYSCAPES_THINGS


def test_no_thing_pixel_gives_zero_not_nan():
    net = FakeImageNetNet()
    fd = ImageNetFeatureDistance(net, classes=(3,))
    x = torch.randn(1, 3, 16, 16)
    assert float(fd(net.encoder_features(x), x, torch.zeros(1, 16, 16, dtype=torch.long))) == 0.0


def test_a_network_without_encoder_features_is_refused():
    with pytest.raises(TypeError, match="encoder_features"):
        ImageNetFeatureDistance(TinySegNet())
