"""DynamicConv2d (DRT): batched forward == explicit per-sample kernels, zero residual == static conv, attention,
temperature schedule and bad arguments. The DCD layer: tests/drt/test_dcd_conv.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from domadapt.layers import DynamicConv2d, annealed_temperature
from domadapt.layers.dynamic_conv import set_progress

# (kernel, stride, padding, dilation, groups): "same" convs, strided, unpadded (DigitsNet), dilated,
# grouped, a 1x1 strided conv and a non-square kernel.
GEOMETRIES = [
    (3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (5, 1, 0, 1, 1), (3, 2, 2, 2, 1), (3, 1, 1, 1, 2),
    (3, 2, 0, 1, 4), (1, 2, 0, 1, 1), ((3, 5), (2, 1), (0, 3), (1, 2), 1),
]


def hand_kernels(layer: DynamicConv2d, context: torch.Tensor) -> torch.Tensor:
    """Per-sample kernels written out from the parameters, one sample at a time (no layer helpers)."""
    kh, kw = layer.weight.shape[-2:]
    kernels = []
    for c in context:
        gap = c.mean((1, 2))  # (C_c,)
        h = torch.relu(layer.squeeze[0].weight @ gap)
        w = layer.weight.detach().clone()
        pi = torch.softmax(layer.to_attention.weight @ h / layer.temperature, 0)  # (K,)
        for k in range(layer.num_kernels):
            w[:, :, kh // 2, kw // 2] += pi[k] * layer.residual[k]
        kernels.append(w)
    return torch.stack(kernels)


def per_sample_conv(layer: DynamicConv2d, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    return torch.cat([F.conv2d(x[i : i + 1], kernels[i], layer.bias, layer.stride, layer.padding, layer.dilation,
                               layer.groups) for i in range(x.shape[0])])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_batched_layer_equals_per_sample_aggregated_convolution(geometry, channels_last):
    k, s, p, d, g = geometry
    torch.manual_seed(0)
    layer = DynamicConv2d(8, 12, k, s, p, d, g, bias=True, num_kernels=3, reduction=2, context_channels=6,
                          temperature=2.5, zero_init=False)
    x, context = torch.randn(4, 8, 11, 13), torch.randn(4, 6, 5, 7)
    if channels_last:  # the layer multiplies channels-last inputs in NHWC order
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = per_sample_conv(layer, x, hand_kernels(layer, context))
        assert torch.allclose(layer.aggregated_weight(context), hand_kernels(layer, context), atol=1e-6)
        out = layer(x, context)
    assert out.shape == expected.shape == F.conv2d(x, layer.weight, None, s, p, d, g).shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_zero_residual_equals_static_convolution(geometry):
    k, s, p, d, g = geometry
    torch.manual_seed(1)
    static = torch.nn.Conv2d(8, 12, k, s, p, d, g, bias=True)
    layer = DynamicConv2d(8, 12, k, s, p, d, g, bias=True, reduction=4, zero_init=False)
    layer.reset_residual(zero=True)
    layer.load_state_dict(static.state_dict(), strict=False)  # same keys as nn.Conv2d: weight, bias
    x = torch.randn(3, 8, 10, 9)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), static(x), atol=1e-6, rtol=1e-6)


def test_attention_is_a_distribution_and_sharpens_as_temperature_falls():
    torch.manual_seed(2)
    layer = DynamicConv2d(16, 16, 3, padding=1, num_kernels=5, reduction=4, temperature=30.0, temperature_anneal=0.5)
    ctx = torch.randn(6, 16, 4, 4) * 5
    with torch.no_grad():
        hot = layer.attention(ctx)
        layer.set_progress(1.0)
        cold = layer.attention(ctx)
    for pi in (hot, cold):
        assert pi.shape == (6, 5) and (pi >= 0).all()
        torch.testing.assert_close(pi.sum(1), torch.ones(6))
    assert (hot.max(1).values <= cold.max(1).values + 1e-7).all()  # T = 30 is flatter than T = 1


def test_temperature_schedule_is_a_pure_function_of_progress():
    values = [annealed_temperature(p / 10, 30.0, 0.4) for p in range(11)]
    assert values == [annealed_temperature(p / 10, 30.0, 0.4) for p in range(11)]
    assert values[0] == 30.0 and values[4:] == [1.0] * 7
    assert values[2] == pytest.approx(30.0 + (1.0 - 30.0) * 0.5)
    assert annealed_temperature(0.7, 5.0, 0.0) == 5.0  # no annealing: constant
    # The module's temperature follows the same function, whatever the order progress is set in.
    layer = DynamicConv2d(8, 8, 3, padding=1, reduction=2, temperature=30.0, temperature_anneal=0.4)
    for p in (0.9, 0.1, 0.2, 0.1):
        set_progress(torch.nn.Sequential(layer), p)
        assert float(layer.temperature) == pytest.approx(annealed_temperature(p, 30.0, 0.4))


def test_gradients_reach_every_parameter_once_the_residual_is_nonzero():
    torch.manual_seed(3)
    layer = DynamicConv2d(8, 8, 3, padding=1, reduction=2, zero_init=False)
    layer(torch.randn(2, 8, 6, 6)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    assert {id(p) for p in layer.new_parameters()} == {id(p) for n, p in layer.named_parameters() if n != "weight"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"num_kernels": 0}, r"num_kernels: expected K >= 1, got 0"),
    ({"num_kernels": -2}, r"num_kernels: expected K >= 1, got -2"),
    ({"reduction": 32}, r"reduction: expected 1 <= reduction <= 16 \(the context channels\), got 32"),
    ({"reduction": 0}, r"reduction: expected 1 <= reduction <= 16"),
    ({"kernel_size": 2}, r"kernel_size: expected odd sides"),
])
def test_bad_arguments_raise_one_line_value_errors(kwargs, match):
    args = {"in_channels": 16, "out_channels": 16, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match) as e:
        DynamicConv2d(**args)
    assert "\n" not in str(e.value)
