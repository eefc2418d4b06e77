"""DCDConv2d against a functional transcription of the released DCD layer (liyunsheng13/dcd @6a5e27f,
models/imagenet/resnet_dcd.py: ``conv_dy`` l.161-197 for bottleneck convolutions, ``conv_basic_dy`` l.78-124 for
basic blocks), in training mode (batch statistics, running-statistic updates) and evaluation mode; the layer loaded
from the released parameter names; zero initialisation; the DCD network's blocks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

from domadapt.layers import DCDConv2d
from domadapt.models.dynamic_resnet import DynamicBlock, DynamicResNet


def released_parameters(c_in: int, c_out: int, k: int, pool: int, seed: int) -> dict[str, torch.Tensor]:
    """Random parameters under the released module's names and shapes (its hyper-parameter rules)."""
    g = torch.Generator().manual_seed(seed)
    dim = int(math.sqrt(c_in * pool * pool))
    squeeze = max(c_in * pool * pool, dim ** 2) // 16
    if pool > 1:
        squeeze = max(squeeze, 4)

    def rnd(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    return {
        "conv.weight": rnd(c_out, c_in, k, k), "q.weight": rnd(dim, c_in, 1, 1), "p.weight": rnd(c_out, dim, 1, 1),
        "bn1.weight": 1 + rnd(dim, scale=0.1), "bn1.bias": rnd(dim, scale=0.1),
        "bn1.running_mean": rnd(dim), "bn1.running_var": 1 + rnd(dim).abs(),
        "bn2.weight": 1 + rnd(dim, scale=0.1), "bn2.bias": rnd(dim, scale=0.1),
        "bn2.running_mean": rnd(dim), "bn2.running_var": 1 + rnd(dim).abs(),
        "fc.0.weight": rnd(squeeze, c_in * pool * pool), "fc.1.fc.0.weight": rnd(squeeze, squeeze),
        "fc_phi.weight": rnd(dim * dim, squeeze), "fc_scale.weight": rnd(c_out, squeeze),
    }


def released_forward(x: torch.Tensor, prm: dict[str, torch.Tensor], stride: int, padding: int, pool: int,
                     training: bool) -> torch.Tensor:
    """The released forward written out: scale * conv(x) + p(BN2(phi @ BN1(q x)) + BN1(q x))."""
    def hsig(t):
        return F.relu6(t + 3.0) / 3.0

    b, c = x.shape[:2]
    dim = prm["q.weight"].shape[0]
    r = F.conv2d(x, prm["conv.weight"], stride=stride, padding=padding)
    y = F.adaptive_avg_pool2d(x, pool).reshape(b, c * pool * pool) @ prm["fc.0.weight"].T
    y = y * hsig(y @ prm["fc.1.fc.0.weight"].T)  # SEModule_small
    phi = (y @ prm["fc_phi.weight"].T).view(b, dim, dim)
    r = hsig(y @ prm["fc_scale.weight"].T).view(b, -1, 1, 1) * r
    out = F.batch_norm(F.conv2d(x, prm["q.weight"], stride=stride), prm["bn1.running_mean"], prm["bn1.running_var"],
                       prm["bn1.weight"], prm["bn1.bias"], training=training)
    h, w = out.shape[-2:]
    out = out.view(b, dim, -1)
    out = F.batch_norm(torch.matmul(phi, out), prm["bn2.running_mean"], prm["bn2.running_var"], prm["bn2.weight"],
                       prm["bn2.bias"], training=training) + out  # BatchNorm1d over (B, L, HW)
    return F.conv2d(out.view(b, -1, h, w), prm["p.weight"]) + r


OURS = {"conv.weight": "weight", "q.weight": "proj_in", "p.weight": "proj_out", "bn1.": "norm_in.",
        "bn2.": "norm_fusion.", "fc.0.weight": "squeeze.weight", "fc.1.fc.0.weight": "gate.weight",
        "fc_phi.weight": "to_fusion.weight", "fc_scale.weight": "to_scale.weight"}


def load_released(layer: DCDConv2d, prm: dict[str, torch.Tensor]) -> None:
    state = {}
    for key, value in prm.items():
        name = next(ours + key[len(ref):] for ref, ours in OURS.items() if key.startswith(ref))
        state[name] = value.flatten(1) if name in ("proj_in", "proj_out") else value.clone()
    missing, unexpected = layer.load_state_dict(state, strict=False)
    assert not unexpected and not missing


# (C_in, C_out, kernel, stride, padding, context pool): bottleneck conv1 / strided conv2 / conv3; basic-block conv
CASES = [(64, 32, 1, 1, 0, 1), (64, 64, 3, 2, 1, 1), (64, 256, 1, 1, 0, 1), (16, 16, 3, 1, 1, 2), (16, 32, 3, 2, 1, 2)]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_layer_equals_the_released_conv_dy(case, training):
    c_in, c_out, k, s, p, pool = case
    prm = released_parameters(c_in, c_out, k, pool, seed=c_in + c_out + k)
    layer = DCDConv2d(c_in, c_out, k, s, p, context_pool=pool)
    load_released(layer, prm)
    assert layer.latent_dim == prm["q.weight"].shape[0] and layer.squeeze.out_features == prm["fc.0.weight"].shape[0]
    layer.train(training)
    x = torch.randn(3, c_in, 9, 11)
    ref_stats = {n: prm[n].clone() for n in prm if "running" in n}
    with torch.no_grad():
        expected = released_forward(x, {**prm, **ref_stats}, s, p, pool, training)
        out = layer(x)
    assert out.shape == expected.shape == F.conv2d(x, prm["conv.weight"], stride=s, padding=p).shape
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    for ref, ours in (("bn1", layer.norm_in), ("bn2", layer.norm_fusion)):  # same running-statistic updates
        torch.testing.assert_close(ours.running_mean, ref_stats[f"{ref}.running_mean"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.running_var, ref_stats[f"{ref}.running_var"], atol=1e-5, rtol=1e-5)
    if training:
        assert not torch.equal(ref_stats["bn1.running_mean"], prm["bn1.running_mean"])  # they did move


def test_zero_init_is_the_static_convolution_and_new_parameters_are_the_rest():
    torch.manual_seed(0)
    static = torch.nn.Conv2d(32, 48, 3, 2, 1, bias=True)
    layer = DCDConv2d(32, 48, 3, 2, 1, bias=True)
    layer.load_state_dict(static.state_dict(), strict=False)
    x = torch.randn(2, 32, 10, 10)
    for mode in (True, False):
        layer.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), static(x), atol=1e-5, rtol=1e-5)
    assert {id(q) for q in layer.new_parameters()} == {id(q) for n, q in layer.named_parameters()
                                                        if n not in ("weight", "bias")}
    layer = DCDConv2d(32, 48, 3, 2, 1, zero_init=False)
    layer(x).square().mean().backward()
    assert all(q.grad is not None and q.grad.abs().sum() > 0 for q in layer.parameters())


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_dcd_network_makes_every_block_convolution_dynamic(arch):
    net = DynamicResNet(arch, num_classes=7, mode="dcd")
    block = net.backbone.layer2[0]
    convs = ("conv1", "conv2", "conv3") if arch == "resnet50" else ("conv1", "conv2")
    assert all(isinstance(getattr(block, c), DCDConv2d) for c in convs)
    assert all(getattr(block, c).context_pool == (1 if arch == "resnet50" else 2) for c in convs)
    static = DynamicResNet(arch, num_classes=7, dynamic=False)
    static.load_state_dict(net.state_dict(), strict=False)  # W0, BatchNorms and head; DCD starts as the static net
    net.eval(), static.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x).logits, static(x).logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="no attention temperature"):
        DynamicResNet(arch, num_classes=7, mode="dcd", temperature=30.0)


def test_dcd_block_forward_is_the_released_bottleneck():
    torch.manual_seed(1)
    block = DynamicBlock(torchvision.models.resnet.Bottleneck(64, 16), "dcd").eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        h = block.relu(block.bn1(block.conv1(x)))
        h = block.relu(block.bn2(block.conv2(h)))
        expected = block.relu(block.bn3(block.conv3(h)) + x)  # Bottleneck_dy.forward, each conv on its own input
        torch.testing.assert_close(block(x), expected)
