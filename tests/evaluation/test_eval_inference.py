"""Full-resolution (BDL) and sliding-window inference on small fixed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.evaluation.inference import full_resolution_logits, sliding_window_logits
from domadapt.structures import NetOutput

K = 5


def _pointwise(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(3, K, kernel_size=1)


class _Strided(nn.Module):
    """1x1 conv then 2x2 average pooling: logits at half resolution (an 'output stride' of 2);
    records the input size it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _pointwise(1)
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> NetOutput:
        self.seen.append(tuple(x.shape[-2:]))
        logits = F.avg_pool2d(self.conv(x), 2)
        return NetOutput(logits, logits.mean((2, 3)))


@torch.no_grad()
def test_full_resolution_matches_manual_interpolation():
    image = torch.randn(2, 3, 32, 48)
    model = _Strided()
    out = full_resolution_logits(model, image, output_size=(40, 60), input_size=(16, 24))
    assert model.seen == [(16, 24)]  # the network ran once, at the input size
    assert out.shape == (2, K, 40, 60)  # the label's size
    x = F.interpolate(image, size=(16, 24), mode="bicubic", align_corners=False, antialias=True)
    low = model(x).logits.softmax(1)  # (2, K, 8, 12)
    np.testing.assert_allclose(out, F.interpolate(low, size=(40, 60), mode="bilinear", align_corners=True),
                               atol=1e-6)
    # align_corners=True keeps the four corner values, and probabilities still sum to 1
    np.testing.assert_allclose(out[..., [0, 0, -1, -1], [0, -1, 0, -1]], low[..., [0, 0, -1, -1], [0, -1, 0, -1]],
                               atol=1e-6)
    np.testing.assert_allclose(out.sum(1), torch.ones(2, 40, 60), atol=1e-5)


@torch.no_grad()
def test_full_resolution_logit_mode_and_plain_tensor_model():
    image = torch.randn(1, 3, 20, 30)
    conv = _pointwise(2)
    out = full_resolution_logits(conv, image, output_size=(40, 60), upsample="logits", align_corners=False,
                                 input_interpolation="bilinear")
    ref = F.interpolate(conv(image), size=(40, 60), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    # at the label size already: no resampling at all, just the softmax
    same = full_resolution_logits(conv, image, output_size=(20, 30), input_size=(20, 30))
    np.testing.assert_allclose(same, conv(image).softmax(1), atol=1e-6)


def test_full_resolution_bad_inputs():
    with pytest.raises(ValueError, match="logits"):
        full_resolution_logits(lambda x: x.mean((2, 3)), torch.zeros(1, 3, 4, 4), output_size=(8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        full_resolution_logits(_pointwise(), torch.zeros(3, 4, 4), output_size=(8, 8))
    with pytest.raises(ValueError, match="upsample"):
        full_resolution_logits(_pointwise(), torch.zeros(1, 3, 4, 4), output_size=(8, 8), upsample="nope")


@torch.no_grad()
@pytest.mark.parametrize(
    "size,window,stride",
    [((23, 37), (8, 12), (5, 7)), ((16, 16), 8, 8), ((10, 9), (16, 16), 4), ((30, 11), (12, 16), (6, 4))],
)
def test_sliding_window_of_pointwise_model_equals_full_forward(size, window, stride):
    image = torch.randn(2, 3, *size)
    conv = _pointwise(3)
    out = sliding_window_logits(conv, image, window=window, stride=stride, num_classes=K)
    assert out.shape == (2, K, *size)
    np.testing.assert_allclose(out, conv(image), atol=1e-5)


def _naive_sliding(image: np.ndarray, fn, window, stride) -> np.ndarray:
    """Reference: every window position on the grid, last one flush with the border, mean per pixel."""
    _, _, h, w = image.shape
    total = np.zeros((image.shape[0], K, h, w))
    count = np.zeros((h, w))
    tops = sorted({min(t, h - window[0]) for t in range(0, h, stride[0])})
    lefts = sorted({min(s, w - window[1]) for s in range(0, w, stride[1])})
    for t in tops:
        for s in lefts:
            total[..., t:t + window[0], s:s + window[1]] += fn(image[..., t:t + window[0], s:s + window[1]])
            count[t:t + window[0], s:s + window[1]] += 1
    return total / count


@torch.no_grad()
def test_sliding_window_averages_overlaps_like_naive_loop():
    # a window-position-dependent model: logits = mean colour of the window + a ramp across the window
    def fn(x):
        ramp = np.linspace(0, 1, x.shape[-1])[None, None, None, :]
        return np.broadcast_to(x.mean(axis=(1, 2, 3), keepdims=True) + ramp * np.arange(K)[None, :, None, None],
                               (x.shape[0], K, *x.shape[-2:]))

    image = torch.randn(2, 3, 19, 29, dtype=torch.float64)
    out = sliding_window_logits(lambda x: torch.from_numpy(np.ascontiguousarray(fn(x.numpy()))), image,
                                window=(8, 10), stride=(5, 6), num_classes=K)
    np.testing.assert_allclose(out.numpy(), _naive_sliding(image.numpy(), fn, (8, 10), (5, 6)), atol=1e-12)


@torch.no_grad()
def test_sliding_window_upsamples_low_resolution_logits_and_checks_classes():
    image = torch.randn(1, 3, 20, 28)
    out = sliding_window_logits(_Strided(), image, window=(8, 8), stride=(6, 6), num_classes=K)
    assert out.shape == (1, K, 20, 28) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="num_classes=4"):
        sliding_window_logits(_pointwise(), image, window=8, stride=8, num_classes=4)
