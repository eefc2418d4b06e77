"""Every method and translator (found by listing, :mod:`tests.method_cases`) trains under 16-bit mixed precision
(fp16 with a gradient scaler, bf16) and in channels_last memory format.

Lightning refuses ``precision="16-mixed"`` on a CPU accelerator, so the fp16 tests pass the same
:class:`~pytorch_lightning.plugins.MixedPrecision` plugin a GPU run builds, with a CPU ``GradScaler``:
autocast to float16, scaled losses, skipped steps on overflow — the GPU code path, run on CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import MixedPrecision

from domadapt.memory_format import ChannelsLast
from tests.conftest import tiny_net
from tests.method_cases import CASES, MethodCase


class Snapshot(pl.Callback):
    """The module's parameters when training starts."""

    def on_train_start(self, trainer, module) -> None:
        self.params = [p.detach().clone() for p in module.parameters()]


def fp16_plugin() -> MixedPrecision:
    """What ``Trainer(precision="16-mixed")`` builds on a GPU, on the CPU."""
    return MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))


def train(case: MethodCase, root: Path, iterations: int = 3, **trainer_kwargs) -> tuple[pl.Trainer, list]:
    module = case.build()
    seen = []  # (dtype, channels_last) of the watched network's output logits or images / input in training
    case.network(module).register_forward_hook(lambda m, inputs, out: seen.append(
        (getattr(out, "logits", out).dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)))
        if m.training else None)
    trainer = pl.Trainer(max_steps=iterations * module.optimizer_steps_per_batch, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=1, num_sanity_val_steps=0, default_root_dir=root, **trainer_kwargs)
    trainer.fit(module, case.datamodule())
    for key in case.train_keys:
        assert math.isfinite(float(trainer.callback_metrics[key])), key
    return trainer, seen


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_method_trains_in_bf16_mixed_precision(case, tmp_path):
    _, seen = train(case, tmp_path, precision="bf16-mixed")
    assert seen and all(dtype == torch.bfloat16 for dtype, _ in seen)  # autocast really ran the network


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_method_trains_in_fp16_mixed_precision_with_a_grad_scaler(case, tmp_path):
    torch.manual_seed(0)
    plugin, start = fp16_plugin(), Snapshot()
    # 12 iterations: the scaler skips the first steps while it lowers its scale from 2^16 on overflow
    trainer, seen = train(case, tmp_path, iterations=12, plugins=[plugin], callbacks=[start])
    assert seen and all(dtype == torch.float16 for dtype, _ in seen)
    params = list(trainer.lightning_module.parameters())
    assert all(torch.isfinite(p).all() for p in params) and all(p.dtype == torch.float32 for p in params)
    assert any(not torch.equal(a, b) for a, b in zip(start.params, params))  # some scaled steps were applied
    assert 0 < plugin.scaler.get_scale() <= 2.0 ** 16  # lowered on overflow, never grown (every 2,000 steps)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_method_trains_in_channels_last(case, tmp_path):
    trainer, seen = train(case, tmp_path, callbacks=[ChannelsLast()])
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
