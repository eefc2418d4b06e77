"""Every method (found by listing) trains under bf16 mixed precision and in channels_last memory format."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

import domadapt
from domadapt.memory_format import ChannelsLast
from domadapt.methods import METHODS
from tests.conftest import tiny_datamodule, tiny_net
from tests.methods.test_methods import module_kwargs, task_of


def train(name: str, **trainer_kwargs) -> tuple[pl.Trainer, list]:
    task = task_of(name)
    net = tiny_net(task)
    module = METHODS[name](net=net, lr=0.01, **module_kwargs(name, net))
    seen = []  # (dtype, channels_last) of the network's output logits / input in training
    net.register_forward_hook(lambda m, inputs, out: seen.append(
        (out.logits.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last))) if m.training else None)
    trainer = pl.Trainer(max_steps=3 * module.optimizer_steps_per_batch, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=1, num_sanity_val_steps=0, **trainer_kwargs)
    trainer.fit(module, tiny_datamodule(task))
    assert math.isfinite(float(trainer.callback_metrics["train/loss_step"]))
    return trainer, seen


@pytest.mark.parametrize("name", domadapt.list_methods())
def test_every_method_trains_in_bf16_mixed_precision(name):
    _, seen = train(name, precision="bf16-mixed")
    assert seen and all(dtype == torch.bfloat16 for dtype, _ in seen)  # autocast really ran the network


@pytest.mark.parametrize("name", domadapt.list_methods())
def test_every_method_trains_in_channels_last(name):
    trainer, seen = train(name, callbacks=[ChannelsLast()])
    assert seen and all(cl for _, cl in seen)
    convs = [p for p in trainer.lightning_module.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


def test_channels_last_keeps_the_outputs():
    net = tiny_net("segmentation").eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        ref = net(x).logits
        net.to(memory_format=torch.channels_last)
        out = net(x.contiguous(memory_format=torch.channels_last)).logits
    assert torch.allclose(ref, out, atol=1e-5)
