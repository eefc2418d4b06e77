"""Gradient reversal, its schedule, and the adversarial losses' conventions and training signal."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.layers import FCDiscriminator, GradientReversal, MLPDiscriminator, grl_coefficient, reverse_gradient
from domadapt.losses import (
    ConditionalAdversarialLoss,
    DomainAdversarialLoss,
    EntropyAdversarialLoss,
    OutputSpaceAdversarialLoss,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ----------------------------------------------------------------------------- GRL


@pytest.mark.parametrize("coeff", [0.0, 0.3, 4.0])
def test_grl_is_identity_forward_and_negated_scaled_gradient_backward(coeff):
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    layer = GradientReversal(coeff)
    y = layer(x)
    torch.testing.assert_close(y, x)
    (grad,) = torch.autograd.grad(y, x, upstream)
    torch.testing.assert_close(grad, -coeff * upstream)
    (grad_fn,) = torch.autograd.grad(reverse_gradient(x, coeff), x, upstream)
    torch.testing.assert_close(grad_fn, -coeff * upstream)


def test_grl_coefficient_schedule_values():
    dann = lambda p: 2 / (1 + math.exp(-10 * p)) - 1  # noqa: E731  (Ganin et al. 2016)
    for p in (0.0, 0.5, 1.0):
        assert grl_coefficient(p) == pytest.approx(dann(p))
        assert grl_coefficient(p, max_coeff=2.0, min_coeff=0.5) == pytest.approx(0.5 + 1.5 * dann(p))
        assert grl_coefficient(p, max_coeff=2.0, schedule="linear") == pytest.approx(2.0 * p)
        assert grl_coefficient(p, max_coeff=2.0, min_coeff=0.4, schedule="constant") == 2.0
    assert grl_coefficient(0.5, gamma=2.0) == pytest.approx(2 / (1 + math.exp(-1.0)) - 1)
    assert grl_coefficient(0.0) == 0.0 and grl_coefficient(1.0) == pytest.approx(0.99991, abs=1e-5)


# ----------------------------------------------------------------------------- DANN


class FirstFeature(nn.Module):
    """A fixed 'discriminator' whose logit is the first feature (positive = source-like)."""

    def forward(self, x):
        return x[:, 0]


def test_dann_label_convention_source_is_one():
    loss = DomainAdversarialLoss(in_features=3, hidden=8)
    loss.discriminator = FirstFeature()
    src = torch.tensor([[5.0, 0, 0], [5.0, 1, 1]])
    tgt = torch.tensor([[-5.0, 0, 0]])
    # correct convention: both domains well classified -> BCE = softplus(-5)
    assert float(loss(src, tgt)) == pytest.approx(softplus(-5.0), rel=1e-5)
    assert float(loss.extra_logs()["discriminator_accuracy"]) == 1.0


def test_dann_value_and_reversed_gradient():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(in_features=4, hidden=16, max_coeff=2.0).eval()  # eval: no dropout
    loss.set_progress(0.5)
    f_s, f_t = torch.randn(6, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    value = loss(f_s, f_t)
    d_s, d_t = loss.discriminator(f_s), loss.discriminator(f_t)
    plain = 0.5 * F.binary_cross_entropy_with_logits(d_s, torch.ones(6)) + 0.5 * F.binary_cross_entropy_with_logits(
        d_t, torch.zeros(3)
    )
    torch.testing.assert_close(value, plain)
    g_rev = torch.autograd.grad(value, (f_s, f_t))
    g_plain = torch.autograd.grad(plain, (f_s, f_t), retain_graph=True)
    coeff = grl_coefficient(0.5, max_coeff=2.0)
    assert loss.coeff == pytest.approx(coeff) and float(loss.extra_logs()["grl_coeff"]) == pytest.approx(coeff)
    for a, b in zip(g_rev, g_plain):
        torch.testing.assert_close(a, -coeff * b)
    # the discriminator itself is trained by ordinary descent (the GRL sits before it)
    loss.zero_grad()
    loss(f_s, f_t).backward()
    w = loss.discriminator.net[0].weight
    (expected,) = torch.autograd.grad(plain, w)
    torch.testing.assert_close(w.grad, expected)


def test_dann_min_coeff_gives_gradient_at_start():
    f_s, f_t = torch.randn(4, 4, requires_grad=True), torch.randn(4, 4)
    DomainAdversarialLoss(4, hidden=8)(f_s, f_t).backward()
    assert float(f_s.grad.abs().sum()) == 0.0  # paper schedule: lambda(0) = 0
    f_s.grad = None
    DomainAdversarialLoss(4, hidden=8, min_coeff=0.1)(f_s, f_t).backward()
    assert float(f_s.grad.abs().sum()) > 0.0


def test_dann_pools_segmentation_maps():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(in_features=4, hidden=8).eval()
    maps_s, maps_t = torch.randn(2, 4, 5, 6), torch.randn(3, 4, 2, 2)
    torch.testing.assert_close(loss(maps_s, maps_t), loss(maps_s.mean((2, 3)), maps_t.mean((2, 3))))


def train_discriminator(loss: nn.Module, objective, steps: int = 30, lr: float = 2e-2) -> tuple[float, float]:
    """Adam on the discriminator alone; returns the objective before and after."""
    opt = torch.optim.Adam(loss.discriminator.parameters(), lr=lr)
    first = objective().item()
    for _ in range(steps):
        opt.zero_grad()
        objective().backward()
        opt.step()
    return first, objective().item()


def test_dann_discriminator_learns_separable_domains():
    torch.manual_seed(0)
    loss = DomainAdversarialLoss(in_features=8, hidden=32, dropout=0.0)
    f_s, f_t = torch.randn(16, 8) + 1.5, torch.randn(16, 8) - 1.5
    before, after = train_discriminator(loss, lambda: loss(f_s, f_t))
    assert after < 0.5 * before and after < 0.1
    assert float(loss.extra_logs()["discriminator_accuracy"]) == 1.0


# ----------------------------------------------------------------------------- CDAN


def test_cdan_value_matches_bce_on_multilinear_map():
    torch.manual_seed(0)
    loss = ConditionalAdversarialLoss(in_features=3, num_classes=4, hidden=8).eval()
    f_s, z_s, f_t, z_t = torch.randn(5, 3), torch.randn(5, 4), torch.randn(2, 3), torch.randn(2, 4)
    h = lambda f, z: (f[:, :, None] * F.softmax(z, 1)[:, None, :]).reshape(len(f), 12)  # noqa: E731
    d_s, d_t = loss.discriminator(h(f_s, z_s)), loss.discriminator(h(f_t, z_t))
    ref = 0.5 * F.binary_cross_entropy_with_logits(d_s, torch.ones(5)) + 0.5 * F.binary_cross_entropy_with_logits(
        d_t, torch.zeros(2)
    )
    torch.testing.assert_close(loss((f_s, z_s), (f_t, z_t)), ref)


def test_cdan_entropy_weights_normalised_per_domain():
    torch.manual_seed(0)
    loss = ConditionalAdversarialLoss(in_features=3, num_classes=4, hidden=8, entropy_conditioning=True).eval()
    f_s, z_s, f_t, z_t = torch.randn(5, 3), 3 * torch.randn(5, 4), torch.randn(2, 3), 3 * torch.randn(2, 4)

    def weighted(f, z, label):
        p = F.softmax(z, 1)
        w = 1 + torch.exp((p * p.log()).sum(1))  # 1 + exp(-H)
        d = loss.discriminator((f[:, :, None] * p[:, None, :]).reshape(len(f), 12))
        bce = F.binary_cross_entropy_with_logits(d, torch.full_like(d, label), reduction="none")
        return (w * bce).sum() / w.sum()

    ref = 0.5 * weighted(f_s, z_s, 1.0) + 0.5 * weighted(f_t, z_t, 0.0)
    torch.testing.assert_close(loss((f_s, z_s), (f_t, z_t)), ref)


def test_cdan_randomizes_only_above_4096():
    assert not ConditionalAdversarialLoss(1024, 4, hidden=4).randomized  # D*K = 4096
    big = ConditionalAdversarialLoss(1025, 4, hidden=4, randomized_dim=32)
    assert big.randomized and big.discriminator.in_features == 32
    assert {"rf", "rg"} <= set(big.state_dict())  # the random matrices travel with checkpoints
    out = big((torch.randn(3, 1025), torch.randn(3, 4)), (torch.randn(2, 1025), torch.randn(2, 4)))
    assert torch.isfinite(out)


def test_cdan_discriminator_learns_separable_domains():
    torch.manual_seed(0)
    loss = ConditionalAdversarialLoss(in_features=6, num_classes=3, hidden=32, dropout=0.0)
    src = (torch.randn(16, 6) + 1.5, torch.randn(16, 3))
    tgt = (torch.randn(16, 6) - 1.5, torch.randn(16, 3))
    before, after = train_discriminator(loss, lambda: loss(src, tgt))
    assert after < 0.5 * before


# ----------------------------------------------------------------------------- output space / AdvEnt


class ConstantLogit(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1, 2, 2), self.value)


class ClassZeroScore(nn.Module):
    """Logit = 4 * (P(class 0) - 0.5): positive where the map says class 0."""

    def forward(self, x):
        return 4 * (x[:, :1] - 0.5)


def one_hot_logits(cls: int, n: int = 2, c: int = 3, size: int = 32) -> torch.Tensor:
    return 30 * F.one_hot(torch.full((n, size, size), cls), c).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("loss_cls", [OutputSpaceAdversarialLoss, EntropyAdversarialLoss])
def test_output_space_generator_term_labels_target_as_source_zero(loss_cls):
    loss = loss_cls(num_classes=3, ndf=4)
    loss.discriminator = ConstantLogit(2.0)
    x = torch.randn(2, 3, 32, 32)
    # BCE(c, 0) = softplus(c); with the labels flipped it would be softplus(-c)
    assert float(loss(x, x)) == pytest.approx(softplus(2.0), rel=1e-6)


def test_output_space_discriminator_loss_labels_source_zero_target_one():
    loss = OutputSpaceAdversarialLoss(num_classes=3, ndf=4)
    loss.discriminator = ClassZeroScore()
    src, tgt = one_hot_logits(0), one_hot_logits(2)  # D(P_s) = +2, D(P_t) = -2
    # source=0 / target=1: both domains misclassified -> 0.5 softplus(2) + 0.5 softplus(2)
    assert float(loss.discriminator_loss(src, tgt)) == pytest.approx(softplus(2.0), rel=1e-5)
    assert float(loss.extra_logs()["discriminator_accuracy"]) == 0.0
    assert float(loss.discriminator_loss(tgt, src)) == pytest.approx(softplus(-2.0), rel=1e-5)


def test_output_space_generator_term_leaves_discriminator_untouched():
    torch.manual_seed(0)
    loss = OutputSpaceAdversarialLoss(num_classes=3, ndf=4)
    tgt = torch.randn(2, 3, 32, 32, requires_grad=True)
    value = loss(tgt.detach(), tgt)
    d_t = loss.discriminator(F.softmax(tgt, 1))
    torch.testing.assert_close(value, F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t)))
    loss.discriminator.zero_grad()
    value.backward()
    assert all(p.grad is None for p in loss.discriminator.parameters())
    assert float(tgt.grad.abs().sum()) > 0


def test_advent_discriminator_sees_self_information():
    torch.manual_seed(0)
    loss = EntropyAdversarialLoss(num_classes=4, ndf=4)
    z = torch.randn(2, 4, 32, 32)
    p = F.softmax(z, 1)
    torch.testing.assert_close(loss.discriminator_input(z), -p * p.log() / math.log(4))
    d_t = loss.discriminator(-p * p.log() / math.log(4))
    torch.testing.assert_close(loss(z, z), F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t)))


@pytest.mark.parametrize("loss_cls", [OutputSpaceAdversarialLoss, EntropyAdversarialLoss])
def test_output_space_discriminator_learns_separable_maps(loss_cls):
    torch.manual_seed(0)
    loss = loss_cls(num_classes=3, ndf=8)
    src, tgt = one_hot_logits(0, n=1) / 10, 0.3 * torch.randn(1, 3, 32, 32)  # confident vs. uncertain maps
    before, after = train_discriminator(loss, lambda: loss.discriminator_loss(src, tgt), steps=12, lr=3e-3)
    assert after < 0.5 * before
    assert float(loss.extra_logs()["discriminator_accuracy"]) == 1.0


def test_discriminator_shapes():
    assert MLPDiscriminator(7, hidden=4)(torch.randn(3, 7)).shape == (3,)
    assert MLPDiscriminator(7, hidden=4, batch_norm=True)(torch.randn(3, 7)).shape == (3,)
    assert FCDiscriminator(5, ndf=4)(torch.randn(2, 5, 64, 96)).shape == (2, 1, 2, 3)


def test_batch_norm_discriminator_normalises_the_joint_batch():
    """With ``batch_norm`` every hidden layer is Linear -> BatchNorm1d -> ReLU: in training mode a constant shift of
    the whole batch changes nothing, and there is no dropout (two forwards agree)."""
    torch.manual_seed(0)
    d = MLPDiscriminator(5, hidden=8, batch_norm=True).train()
    x = torch.randn(16, 5)
    assert torch.allclose(d(x), d(x))
    assert torch.allclose(d(x), d(x + 3.0), atol=1e-5)
    plain = MLPDiscriminator(5, hidden=8).train()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    assert not torch.allclose(plain(x), plain(x))  # dropout
