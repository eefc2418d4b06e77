"""The prediction path (softmax, one upsample of probabilities) and sliding-window inference on small fixed models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.evaluation.inference import class_probabilities, native_resolution, sliding_window_logits
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


def upsample_align_corners(p: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """NumPy transcription of ``F.interpolate(p, size, mode="bilinear", align_corners=True)`` for ``(K, h, w)``:
    output pixel ``i`` samples input coordinate ``i (h - 1) / (H - 1)``."""
    k, h, w = p.shape
    H, W = size
    ys = np.arange(H) * ((h - 1) / (H - 1) if H > 1 else 0.0)
    xs = np.arange(W) * ((w - 1) / (W - 1) if W > 1 else 0.0)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = p[:, y0][:, :, x0] * (1 - wx) + p[:, y0][:, :, x1] * wx
    bottom = p[:, y1][:, :, x0] * (1 - wx) + p[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


@torch.no_grad()
def test_class_probabilities_softmax_then_one_upsample():
    logits = torch.randn(2, K, 8, 12) * 4
    out = class_probabilities(logits, (40, 60))
    assert out.shape == (2, K, 40, 60) and out.dtype == torch.float32
    e = np.exp(logits.numpy() - logits.numpy().max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    for i in range(2):
        np.testing.assert_allclose(out[i].numpy(), upsample_align_corners(p[i], (40, 60)), atol=1e-6)
    np.testing.assert_allclose(out.sum(1), torch.ones(2, 40, 60), atol=1e-5)
    # the logits path (upsample, then softmax) gives other numbers: what is upsampled matters
    other = F.interpolate(logits, size=(40, 60), mode="bilinear", align_corners=True).softmax(1)
    assert (other - out).abs().max() > 1e-2
    # at the label's size already, or classification: just the softmax
    torch.testing.assert_close(class_probabilities(logits, (8, 12)), logits.softmax(1))
    torch.testing.assert_close(class_probabilities(logits[:, :, 0, 0], (40, 60)), logits[:, :, 0, 0].softmax(1))


def test_native_resolution_switches_in_net_upsampling_off_and_back():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.plain = nn.Module(), nn.Conv2d(3, K, 1)
            self.inner.upsample_logits, self.upsample_logits = True, False

    net = Net()
    with native_resolution(net):
        assert net.inner.upsample_logits is False and net.upsample_logits is False
    assert net.inner.upsample_logits is True and net.upsample_logits is False  # restored as found
    with pytest.raises(RuntimeError), native_resolution(net):
        raise RuntimeError("inside")
    assert net.inner.upsample_logits is True  # restored after an error too


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
