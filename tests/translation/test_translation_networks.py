"""CycleGAN networks: generator / PatchGAN structure and shapes, Tanh range, InstanceNorm, init, receptive field."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from domadapt.models.translation import PatchDiscriminator, ResnetBlock, ResnetGenerator, patch_receptive_field


def test_generator_shape_and_structure():
    g = ResnetGenerator(ngf=8, n_blocks=3)
    for hw in ((32, 48), (64, 64), (38, 65)):  # sizes that are not multiples of 4 are padded and cropped back
        assert g(torch.randn(2, 3, *hw)).shape == (2, 3, *hw)
    x = torch.randn(1, 3, 38, 65)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2), mode="reflect")
    assert torch.equal(g(x), g(padded)[..., :38, :65])
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7) and convs[0].out_channels == 8  # c7s1-ngf
    assert [c.out_channels for c in convs if c.stride == (2, 2)] == [16, 32]  # d128, d256 (x ngf/64)
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.out_channels, u.stride) for u in ups] == [(16, (2, 2)), (8, (2, 2))]  # u128, u64
    assert convs[-1].kernel_size == (7, 7) and convs[-1].out_channels == 3  # c7s1-3
    assert sum(isinstance(m, ResnetBlock) for m in g.modules()) == 3
    assert all(b.block[1].in_channels == 32 for b in g.modules() if isinstance(b, ResnetBlock))
    assert isinstance(g.model[-1], nn.Tanh)
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())
    assert not any(isinstance(m, (nn.ZeroPad2d, nn.ReplicationPad2d)) for m in g.modules())
    assert all(c.padding == (0, 0) for c in convs if c.stride == (1, 1))  # stride-1 convs pad by reflection
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == 2 + 2 * 3


@pytest.mark.parametrize("net", [ResnetGenerator(ngf=8, n_blocks=2), PatchDiscriminator(ndf=8)])
def test_instance_norm_is_not_affine_and_keeps_no_statistics(net):
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert norms and all(isinstance(m, nn.InstanceNorm2d) for m in norms)
    assert all(not m.affine and not m.track_running_stats for m in norms)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(net.train()(x), net.eval()(x))  # per-image statistics in both modes


def test_generator_output_is_tanh_bounded_and_saturates():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, n_blocks=1)
    with torch.no_grad():
        g.model[-2].weight.mul_(1000.0)  # huge pre-activations
    y = g(torch.randn(2, 3, 32, 32))
    assert y.abs().max() <= 1.0 and (y.abs() > 0.999).float().mean() > 0.5


def test_residual_block_with_zero_weights_is_identity():
    block = ResnetBlock(4)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("net", [ResnetGenerator(ngf=32, n_blocks=2), PatchDiscriminator(ndf=32)])
def test_init_is_normal_0_002(net):
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    big = max(convs, key=lambda m: m.weight.numel())
    assert abs(big.weight.std().item() - 0.02) < 0.002 and abs(big.weight.mean().item()) < 0.002
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs if m.bias is not None)


@pytest.mark.parametrize("n_layers,hw,out", [(3, 256, 30), (3, 70, 6), (2, 64, 14), (1, 64, 30)])
def test_patch_discriminator_output_size(n_layers, hw, out):
    d = PatchDiscriminator(ndf=4, n_layers=n_layers)
    assert d(torch.randn(1, 3, hw, hw)).shape == (1, 1, out, out)


def test_patch_discriminator_layer_widths():
    d = PatchDiscriminator(ndf=64, n_layers=3)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert isinstance(d.model[1], nn.LeakyReLU) and d.model[1].negative_slope == 0.2  # no norm on the first layer


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_receptive_field_measured_by_gradient(n_layers):
    """The input pixels one output score depends on form a square of patch_receptive_field(n) (70 for n=3)."""
    d = copy.deepcopy(PatchDiscriminator(ndf=2, n_layers=n_layers))
    for i, m in enumerate(d.model):  # instance norm couples all pixels; the field is a property of the convs
        if isinstance(m, nn.InstanceNorm2d):
            d.model[i] = nn.Identity()
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.fill_(0.1)
                m.bias.fill_(0.1)
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    y = d(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    support = x.grad[0].abs().sum(0) > 0  # (H, W)
    rows, cols = support.any(1).nonzero().flatten(), support.any(0).nonzero().flatten()
    side = patch_receptive_field(n_layers)
    assert rows[-1] - rows[0] + 1 == side and cols[-1] - cols[0] + 1 == side
    assert support.sum() == side * side
    assert patch_receptive_field(3) == 70  # the "70x70 PatchGAN"


def test_generator_from_state_dict_reads_the_architecture():
    g = ResnetGenerator(in_channels=3, out_channels=3, ngf=6, n_blocks=4)
    h = ResnetGenerator.from_state_dict(g.state_dict())
    assert (h.ngf, h.n_blocks) == (6, 4)
    x = torch.randn(1, 3, 16, 16)
    assert torch.equal(g(x), h(x))
    with pytest.raises(ValueError, match="not a ResnetGenerator"):
        ResnetGenerator.from_state_dict({"weight": torch.zeros(1)})


def test_bad_arguments():
    with pytest.raises(ValueError, match="ngf"):
        ResnetGenerator(ngf=0)
    with pytest.raises(ValueError, match="n_layers"):
        PatchDiscriminator(n_layers=0)
