"""Generic checks every alignment loss passes, parametrized over the LOSSES listing.

A new loss added to ``domadapt.losses`` is tested here the day it is added; a user-defined
subclass (``MeanDistance`` below) goes through the very same checks.
"""

from __future__ import annotations

import inspect
import typing

import pytest
import torch
import torch.nn.functional as F

from domadapt.losses import LOSSES, AlignmentLoss
from domadapt.losses.base import InputKind

D, K = 12, 5  # feature width and class count differ on purpose, so a swapped axis fails
DIMS = {"in_features": D, "num_classes": K}
SMALL = {"hidden": 32, "ndf": 8, "randomized_dim": 16, "max_samples": 256}  # keep CPU time low
TASKS = ("classification", "segmentation")


class MeanDistance(AlignmentLoss):
    """A user loss: squared distance between batch means. Shape: ``(N, D)`` -> ``()``."""

    input_kind = "features"
    supports = frozenset({"classification"})
    is_divergence = True

    def forward(self, source, target):
        self.check_inputs(source, target)
        return (source.mean(0) - target.mean(0)).pow(2).sum()


CANDIDATES = {**LOSSES, "MeanDistance": MeanDistance}


def cases(predicate=lambda cls: True) -> list:
    """``(name, task)`` for every candidate loss satisfying ``predicate`` and every task it supports."""
    return [
        pytest.param(name, task, id=f"{name}-{task}")
        for name, cls in CANDIDATES.items()
        if predicate(cls)
        for task in TASKS
        if task in cls.supports
    ]


CASES = cases()


def build(cls: type[AlignmentLoss]) -> AlignmentLoss:
    """Instantiate ``cls`` filling its size arguments by name; fail loudly on an unknown required one."""
    kwargs = {}
    for name, p in inspect.signature(cls).parameters.items():
        if name in DIMS:
            kwargs[name] = DIMS[name]
        elif name in SMALL:
            kwargs[name] = SMALL[name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            pytest.fail(f"{cls.__name__}: no test value for required argument {name!r}; add it to DIMS")
    return cls(**kwargs)


def make_input(kind: str, task: str, n: int, gen: torch.Generator, shift: float = 0.0, scale: float = 1.0):
    """Random inputs of ``kind`` for ``task``; leaf tensors with ``requires_grad``.

    Features are ``scale * N(0, 1) + shift`` (a scale change moves covariances, a shift moves means).
    """
    tail = () if task == "classification" else (32, 32)  # 32 = the FCDiscriminator minimum
    if task == "segmentation":
        n = min(n, 2)  # every pixel is a sample already; keep CPU time low

    def feats():
        return (scale * torch.randn(n, D, *tail, generator=gen) + shift).requires_grad_()

    def logits():
        return (2 * torch.randn(n, K, *tail, generator=gen)).requires_grad_()

    if kind == "features":
        return feats()
    if kind == "logits":
        return logits()
    if kind == "probs":
        return F.softmax(torch.randn(n, K, *tail, generator=gen), 1).requires_grad_()
    if kind == "features+logits":
        return feats(), logits()
    if kind == "logits+logits":
        return logits(), logits()
    raise AssertionError(f"unknown input_kind {kind!r}")


def leaves(x):
    return list(x) if isinstance(x, tuple) else [x]


def grad_total(x) -> float:
    return sum(float(t.grad.abs().sum()) for t in leaves(x) if t.grad is not None)


def test_listing_is_complete_and_well_formed():
    assert len(LOSSES) >= 9
    for name, cls in LOSSES.items():
        assert issubclass(cls, AlignmentLoss) and cls.__name__ == name
        assert cls.input_kind in typing.get_args(InputKind), name
        assert cls.supports and cls.supports <= set(TASKS), name
        doc = inspect.getdoc(cls) or ""
        assert "Shape:" in doc and "https://" in doc, f"{name}: docstring needs Shape: and a paper link"


@pytest.mark.parametrize("name, task", CASES)
def test_finite_scalar_and_gradients(name, task):
    gen = torch.Generator().manual_seed(0)
    cls = CANDIDATES[name]
    loss = build(cls)
    loss.set_progress(1.0)  # schedules at full strength (a GRL at p=0 passes no gradient)
    src, tgt = make_input(cls.input_kind, task, 6, gen), make_input(cls.input_kind, task, 4, gen, shift=1.0)
    value = loss(src, tgt)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    for t in leaves(src) + leaves(tgt):
        assert t.grad is None or torch.isfinite(t.grad).all()
    assert grad_total(tgt) > 0, "no gradient reached the target input"
    if cls.uses_source:
        assert grad_total(src) > 0, "no gradient reached the source input"
    else:
        assert grad_total(src) == 0, "uses_source=False but the source received gradient"
    for key, log in loss.extra_logs().items():
        assert isinstance(log, torch.Tensor) and log.dim() == 0 and not log.requires_grad, key


@pytest.mark.parametrize("name, task", cases(lambda cls: hasattr(cls, "discriminator_loss")))
def test_separate_discriminator_loss_trains_only_the_discriminator(name, task):
    loss = build(CANDIDATES[name])
    gen = torch.Generator().manual_seed(1)
    src, tgt = make_input(loss.input_kind, task, 2, gen), make_input(loss.input_kind, task, 2, gen)
    value = loss.discriminator_loss(src, tgt)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert grad_total(src) == 0 and grad_total(tgt) == 0
    assert all(p.grad is not None for p in loss.discriminator.parameters())


@pytest.mark.parametrize("name, task", cases(lambda cls: cls.is_divergence))
def test_divergences_vanish_on_identical_batches(name, task):
    cls = CANDIDATES[name]
    gen = torch.Generator().manual_seed(2)
    loss = build(cls)
    x = make_input(cls.input_kind, task, 8, gen)
    other = make_input(cls.input_kind, task, 8, gen, shift=2.0, scale=3.0)
    with torch.no_grad():
        same, different = float(loss(x, x.clone())), float(loss(x, other))
    assert abs(same) < 1e-5
    assert different > same + 1e-3


@pytest.mark.parametrize("name, task", CASES)
def test_value_is_a_pure_function_of_inputs_and_progress(name, task):
    """No hidden counter: repeated calls at the same progress agree, and so does a fresh copy."""
    cls = CANDIDATES[name]
    gen = torch.Generator().manual_seed(3)
    loss = build(cls).eval()
    src, tgt = make_input(cls.input_kind, task, 4, gen), make_input(cls.input_kind, task, 4, gen)
    loss.set_progress(0.4)
    first = loss(src, tgt)
    loss(src, tgt)
    clone = build(cls).eval()
    clone.load_state_dict(loss.state_dict())
    clone.set_progress(0.4)
    torch.testing.assert_close(loss(src, tgt), first)
    torch.testing.assert_close(clone(src, tgt), first)
