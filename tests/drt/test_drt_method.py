"""DRT objective against hand computations, gradient-reversal signs, inference rule, source checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from domadapt.data import DomainNet, EmbeddedDigits
from domadapt.methods import DRT
from domadapt.methods.drt import class_balance_loss, label_smoothed_cross_entropy, validate_sources
from domadapt.models import DigitsNet

K = 4


def make_drt(**kw) -> DRT:
    torch.manual_seed(0)
    net = DigitsNet(num_classes=K, num_features=16, dropout=0.0)
    args = dict(classifier_width=12, classifier_dropout=0.0, balance_weight=0.3, discrepancy_weight=5.0,
                grl_coeff=2.0, label_smoothing=0.1, lr=0.01)
    return DRT(net=net, **{**args, **kw})


def fixed_batch(n: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"source": {"image": torch.randn(n, 3, 32, 32, generator=g), "label": torch.randint(0, K, (n,), generator=g),
                       "domain": torch.tensor([0, 0, 0, 1, 1, 2][:n])},
            "target": {"image": torch.randn(n, 3, 32, 32, generator=g) + 1.0}}


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_label_smoothed_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    z, y, eps = rng.normal(size=(7, 5)) * 3, rng.integers(0, 5, 7), 0.2
    logp = np_log_softmax(z)
    w = np.full((7, 5), eps / 4)
    w[np.arange(7), y] = 1 - eps
    expected = -(w * logp).sum(1)
    yt = torch.tensor(y)
    got = label_smoothed_cross_entropy(torch.tensor(z), yt, eps, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    yt[[1, 4]] = 255  # ignored samples: 0 per sample, excluded from the mean
    got = label_smoothed_cross_entropy(torch.tensor(z), yt, eps)
    assert float(got) == pytest.approx(np.delete(expected, [1, 4]).mean())
    assert float(label_smoothed_cross_entropy(torch.tensor(z), torch.full((7,), 255), eps)) == 0.0


def test_class_balance_loss_matches_numpy_and_prefers_balanced_batches():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(9, 6)) * 2
    p = np.exp(np_log_softmax(z))
    expected = -np.log(p.mean(0) + 1e-6).mean()
    assert float(class_balance_loss(torch.tensor(z))) == pytest.approx(expected, rel=1e-10)
    collapsed = torch.zeros(6, 6)
    collapsed[:, 0] = 10.0
    assert class_balance_loss(torch.eye(6) * 10) < class_balance_loss(collapsed)


def test_loss_terms_and_gradients_match_hand_computation_with_reversed_signs():
    module = make_drt()
    hp, batch, n = module.hparams, fixed_batch(), 6
    terms = module.loss_terms(batch)
    terms["loss"].backward()
    got = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}

    # Hand computation on the same modules, without gradient reversal.
    module.zero_grad()
    f = module.net(torch.cat([batch["source"]["image"], batch["target"]["image"]])).features
    z1, z2 = module.c1(f), module.c2(f)
    y = batch["source"]["label"]

    def ls_ce(z):
        logp = torch.log_softmax(z, 1)
        w = torch.full_like(logp, hp.label_smoothing / (K - 1))
        w[torch.arange(n), y] = 1 - hp.label_smoothing
        return -(w * logp).sum(1).mean()

    def div(z):
        return -torch.log(torch.softmax(z, 1).mean(0) + 1e-6).mean()

    task = ls_ce(z1[:n]) + ls_ce(z2[:n])
    balance = div(z1[n:]) + div(z2[n:])
    dis = (torch.softmax(module.c1(f[n:]), 1) - torch.softmax(module.c2(f[n:]), 1)).abs().mean()
    for key, value in (("task", task), ("balance", balance), ("discrepancy", dis)):
        assert float(terms[key].detach()) == pytest.approx(float(value.detach()), rel=1e-5)
    total = task + hp.balance_weight * balance - hp.discrepancy_weight * dis
    assert float(terms["loss"].detach()) == pytest.approx(float(total.detach()), rel=1e-5)

    names = [nm for nm, p in module.named_parameters() if p.requires_grad]
    params = [p for _, p in module.named_parameters() if p.requires_grad]
    g_rest = torch.autograd.grad(task + hp.balance_weight * balance, params, retain_graph=True, allow_unused=True)
    g_dis = torch.autograd.grad(dis, params, allow_unused=True)
    alignment = {"c1": 0.0, "net": 0.0}  # per group: sign * <reversal's share of the gradient, grad L_dis>
    for name, a, d in zip(names, g_rest, g_dis):
        a = torch.zeros_like(params[names.index(name)]) if a is None else a
        d = torch.zeros_like(a) if d is None else d
        if name.startswith(("c1.", "c2.")):
            # Classifiers: plain gradient of -eta * L_dis -> gradient descent *ascends* L_dis.
            expected, sign = a - hp.discrepancy_weight * d, -1
        else:
            # Feature extractor: the reversal turns -eta into +lambda * eta -> descent *descends* L_dis.
            expected, sign = a + hp.grl_coeff * hp.discrepancy_weight * d, +1
        torch.testing.assert_close(got[name], expected, atol=1e-6, rtol=1e-4)
        alignment["c1" if name.startswith("c") else "net"] += sign * float(((got[name] - a) * d).double().sum())
    # summed over each group (a single parameter with a near-zero d can flip sign with the thread count)
    assert alignment["c1"] > 0 and alignment["net"] > 0
    assert "net.head.weight" not in got  # the network's own head is unused and frozen


class Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, f):
        return self.logits


def test_inference_takes_the_classifier_with_the_larger_max_logit():
    module = make_drt().eval()
    z1 = torch.tensor([[3.0, 2.9, 0.0], [0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    z2 = torch.tensor([[0.0, 2.95, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 2.0]])
    module.c1, module.c2 = Fixed(z1), Fixed(z2)
    out = module.eval_logits(torch.randn(3, 3, 32, 32))
    assert torch.equal(out, torch.stack([z1[0], z2[1], z1[2]]))  # tie (row 2) -> first classifier
    assert out.argmax(1).tolist() == [0, 2, 0]
    assert (z1.softmax(1) + z2.softmax(1)).argmax(1)[0] == 1  # averaging would have chosen differently


def test_domain_label_ablation_averages_per_source():
    module = make_drt(use_domain_labels=True, label_smoothing=0.0)
    z, y = torch.randn(6, K), torch.tensor([0, 1, 2, 3, 0, 1])
    dom = torch.tensor([0, 0, 0, 1, 1, 2])
    per = torch.nn.functional.cross_entropy(z, y, reduction="none")
    expected = (per[:3].mean() + per[3:5].mean() + per[5]) / 3
    assert float(module.source_loss(z, y, dom)) == pytest.approx(float(expected), rel=1e-6)
    module.hparams.use_domain_labels = False
    assert float(module.source_loss(z, y, dom)) == pytest.approx(float(per.mean()), rel=1e-6)


def test_pseudo_label_hook_adds_weighted_ce_on_labelled_target_only():
    module = make_drt(pseudo_label_weight=0.5)
    batch = fixed_batch()
    base = module.loss_terms(batch)
    assert "pseudo" not in base
    batch["target"]["label"] = torch.tensor([1, 255, 0, 255, 3, 2])
    terms = module.loss_terms(batch)
    assert float(terms["pseudo"].detach()) > 0
    expected = (base["loss"] + 0.5 * terms["pseudo"]).detach()
    assert float(terms["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_learning_rate_milestones_are_a_step_function_of_progress():
    module = make_drt(lr_milestones=(1 / 3, 2 / 3), lr_gamma=0.1, schedule_horizon=30)
    factors = [module.lr_lambda(s) for s in range(31)]
    assert factors[:10] == [1.0] * 10 and factors[10:20] == pytest.approx([0.1] * 10)
    assert factors[20:] == pytest.approx([0.01] * 11)


def test_param_groups_cover_method_once_with_classifier_multiplier():
    module = make_drt(classifier_lr_mult=7.0, head_lr_mult=3.0)
    groups = module.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in module.parameters() if p.requires_grad}
    assert groups[-1]["name"] == "classifiers" and groups[-1]["lr_mult"] == 7.0
    assert not any(p.requires_grad for p in module.net.head.parameters())


def test_target_among_the_sources_is_refused():
    root = "/nonexistent/domainnet"  # datasets are lazy: nothing is read
    sources = [DomainNet(root, d) for d in ("infograph", "clipart", "real")]
    with pytest.raises(ValueError, match=r"DRT: source 1 \(DomainNet\(.*clipart.*\)\) is the target domain 'clipart'"):
        validate_sources(sources, DomainNet(root, "clipart"))
    validate_sources(sources[::2], DomainNet(root, "clipart"))  # leave-one-out is fine
    validate_sources([EmbeddedDigits("digits")], EmbeddedDigits("digits-photo"))
    module = make_drt()
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(sources=[EmbeddedDigits("digits-photo")],
                                                                 target=EmbeddedDigits("digits-photo")))
    with pytest.raises(ValueError, match="is the target domain 'digits-photo'"):
        module.setup("fit")


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a classification network"):
        DRT(net=SimpleNamespace(task="segmentation"))
    with pytest.raises(ValueError, match=r"label_smoothing: expected 0 <= eps < 1"):
        make_drt(label_smoothing=1.0)
    assert math.isfinite(float(make_drt().loss_terms(fixed_batch())["loss"].detach()))
