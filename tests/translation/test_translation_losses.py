"""Translation objective against hand computations with stub networks (METHODS.md §1.3(c), code form)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from domadapt.methods.translation import Translation, discriminator_terms, generator_terms
from domadapt.models.translation import ResnetGenerator, SemanticPerceptualLoss

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Scale(nn.Module):
    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return self.a * x


class Constant(nn.Module):
    """A 'discriminator' answering ``c`` on a 3x2 patch map whatever the input."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        return torch.full((x.shape[0], 1, 3, 2), self.c)


class Pointwise(nn.Module):
    """Stub segmentation net: fixed 1x1 convolution 3 -> 2 classes, returning a NetOutput-like object."""

    task = "segmentation"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0]]).view(2, 3, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.2, -0.1]))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return type("Out", (), {"logits": self.conv(x)})()


W = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0]])
B = np.array([0.2, -0.1])


def np_logits(x):  # x (N, 3, H, W) in [-1, 1]
    z = ((x + 1) / 2 - np.array(MEAN)[None, :, None, None]) / np.array(STD)[None, :, None, None]
    return np.einsum("kc,nchw->nkhw", W, z) + B[None, :, None, None]


def np_in(l):
    mu = l.mean(axis=(2, 3), keepdims=True)
    var = l.var(axis=(2, 3), keepdims=True)  # biased, as InstanceNorm
    return (l - mu) / np.sqrt(var + 1e-5)


def np_sem(u, v, form="code"):
    a, b = np_logits(u), np_logits(v)
    return ((np_in(a) - np_in(b)) ** 2).mean() if form == "code" else np.abs(a - b).mean()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 6, 4, generator=g) * 2 - 1, torch.rand(2, 3, 6, 4, generator=g) * 2 - 1


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.8, 1.3)])
def test_generator_terms_match_hand_computation(images, a, b):
    real_a, real_b = images
    A, Bi = real_a.double().numpy(), real_b.double().numpy()
    ca, cb = 0.3, -0.4
    per = SemanticPerceptualLoss(Pointwise(), "code", MEAN, STD)
    terms, imgs = generator_terms(real_a, real_b, Scale(a), Scale(b), Constant(ca), Constant(cb), per)
    fake_b, fake_a = a * A, b * Bi
    rec_a, rec_b = b * fake_b, a * fake_a
    expected = {
        "gan_a": (ca - 1) ** 2, "gan_b": (cb - 1) ** 2,
        "cycle_a": np.abs(rec_a - A).mean(), "cycle_b": np.abs(rec_b - Bi).mean(),
        "idt_a": np.abs(a * Bi - Bi).mean(), "idt_b": np.abs(b * A - A).mean(),
        "per_a": np_sem(fake_b, A), "per_b": np_sem(fake_a, Bi),
        "per_recon_a": np_sem(rec_a, A), "per_recon_b": np_sem(rec_b, Bi),
    }
    assert set(terms) == set(expected)
    for k, v in expected.items():
        assert terms[k].item() == pytest.approx(v, rel=1e-4, abs=1e-6), k
    if a == b == 1.0:  # identity generators: only the adversarial terms remain
        assert all(terms[k].item() == pytest.approx(0.0, abs=1e-6) for k in expected if not k.startswith("gan"))
    # The weights of the code form: 1 (LSGAN), 10 (cycle), 0.5 x 10 (identity), 0.1 (per), 10 (per_recon).
    total = (expected["gan_a"] + expected["gan_b"] + 10 * (expected["cycle_a"] + expected["cycle_b"])
             + 5 * (expected["idt_a"] + expected["idt_b"]) + 0.1 * (expected["per_a"] + expected["per_b"])
             + 10 * (expected["per_recon_a"] + expected["per_recon_b"]))
    weights = Translation(ngf=2, n_blocks=0, ndf=2, n_layers=1).loss_weights()
    assert sum(weights[k] * terms[k] for k in terms).item() == pytest.approx(total, rel=1e-4)


def test_generator_terms_without_identity_or_perceptual(images):
    terms, _ = generator_terms(*images, Scale(1.0), Scale(1.0), Constant(0.0), Constant(0.0), None, identity=False)
    assert set(terms) == {"gan_a", "gan_b", "cycle_a", "cycle_b"}


def test_discriminator_terms_match_hand_computation(images):
    real_a, real_b = images
    d = discriminator_terms(real_a, real_b, real_a, real_b, Constant(0.3), Constant(-0.4))
    assert d["D_a"].item() == pytest.approx(0.5 * ((0.3 - 1) ** 2 + 0.3**2))
    assert d["D_b"].item() == pytest.approx(0.5 * ((-0.4 - 1) ** 2 + 0.4**2))


def test_discriminator_sees_real_target_and_fake_target_images():
    real_a, real_b, fake_a, fake_b = (torch.full((1, 3, 4, 4), v) for v in (1.0, 2.0, 3.0, 4.0))

    class Mean(nn.Module):
        def forward(self, x):
            return x.mean().view(1, 1, 1, 1)

    d = discriminator_terms(real_a, real_b, fake_a, fake_b, Mean(), Mean())
    assert d["D_a"].item() == pytest.approx(0.5 * ((2 - 1) ** 2 + 4**2))  # D_A: real B vs fake B
    assert d["D_b"].item() == pytest.approx(0.5 * ((1 - 1) ** 2 + 3**2))  # D_B: real A vs fake A


@pytest.mark.parametrize("form", ["code", "paper"])
def test_perceptual_forms_by_hand(images, form):
    u, v = images
    per = SemanticPerceptualLoss(Pointwise(), form, MEAN, STD)
    assert per(u, v).item() == pytest.approx(np_sem(u.double().numpy(), v.double().numpy(), form), rel=1e-4)
    assert per(u, u).item() == 0.0


def test_perceptual_forms_differ_on_a_global_logit_shift(images):
    """Code form (instance-normalised) ignores a per-image brightness change the paper form (L1) sees."""
    u, _ = images
    net = Pointwise()
    with torch.no_grad():
        net.conv.weight.zero_()
        net.conv.weight[:, 0] = 1.0  # logits = f(red channel) + bias
    v = u.clone()
    v[:, 0] += 0.2  # a constant shift of each logit map
    assert SemanticPerceptualLoss(net, "code")(u, v).item() == pytest.approx(0.0, abs=1e-8)
    assert SemanticPerceptualLoss(net, "paper")(u, v).item() > 0.1


def test_perceptual_net_gets_normalised_input(images):
    u, _ = images
    net = Pointwise()
    SemanticPerceptualLoss(net, "code", MEAN, STD).logits(u)
    expected = ((u + 1) / 2 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(net.seen[-1], expected)


def test_perceptual_gradient_reaches_generator_and_not_the_frozen_net():
    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 1))
    seg[1].running_mean.fill_(0.5)
    per = SemanticPerceptualLoss(seg, "code")
    per.train()  # a parent module switching to train mode must not unfreeze the net
    assert not seg.training and not seg[1].training
    g = ResnetGenerator(ngf=4, n_blocks=1)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    loss = per(g(x), x)
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters() if p.dim() > 1)
    assert all(p.grad is None and not p.requires_grad for p in seg.parameters())
    assert seg[1].running_mean.eq(0.5).all()  # eval-mode BatchNorm: running statistics untouched


def test_perceptual_form_is_checked():
    with pytest.raises(ValueError, match="form"):
        SemanticPerceptualLoss(Pointwise(), "l2")
