"""Gradient checkpointing of the large backbones: the same outputs, gradients and BatchNorm running statistics
as the plain network after a training step (the recomputation must not update the statistics twice)."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.models.small_models import build, example_input

CASES = [("DeepLabV2", {"freeze_bn": "none"}), ("DeepLabV2", {"freeze_bn": "affine"}), ("ResNetClassifier", {}),
         ("DynamicResNet", {})]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k.get('freeze_bn', 'bn')}" for n, k in CASES])
def test_checkpointed_step_equals_the_plain_step(name, kwargs):
    plain = build(name, **kwargs).train()
    ckpt = copy.deepcopy(plain)
    ckpt.gradient_checkpointing = True
    x = example_input(name)
    outs = []
    for net in (plain, ckpt):
        out = net(x)
        (out.logits.square().mean() + out.features.mean()).backward()
        outs.append(out.logits.detach())
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        assert (a.grad is None) == (b.grad is None), n
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), n
    for (n, a), (_, b) in zip(plain.named_buffers(), ckpt.named_buffers()):
        assert torch.equal(a, b) if not a.is_floating_point() else torch.allclose(a, b, atol=1e-6), n


def test_checkpointing_runs_only_when_gradients_are_recorded(monkeypatch):
    from domadapt.models import grad_checkpoint

    calls = []
    real = grad_checkpoint.checkpoint
    monkeypatch.setattr(grad_checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = build("ResNetClassifier")
    net.gradient_checkpointing = True
    with torch.no_grad():
        net(example_input("ResNetClassifier"))
    assert not calls
    net(example_input("ResNetClassifier"))
    assert len(calls) == sum(len(layer) for layer in (net.backbone.layer1, net.backbone.layer2, net.backbone.layer3,
                                                      net.backbone.layer4))
