"""MCD's options in TLlib's digit setting: two-hidden-layer heads, one BatchNorm convention (every forward over the
joint source + target batch), discrepancy and class-balance weights, the generator's own momentum."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from domadapt.layers.mcd_head import MCDHead
from domadapt.losses.class_balance import class_balance_loss
from domadapt.methods import MCD
from tests.conftest import tiny_datamodule, tiny_net


def test_hidden_layer_heads_and_generator_momentum():
    module = MCD(tiny_net("classification"), head_hidden=24, head_dropout=0.25, generator_momentum=0.0, momentum=0.9)
    assert isinstance(module.c1, MCDHead) and module.c1[1].out_features == 24 and module.c1[0].p == 0.25
    assert module.c1[1].weight.data_ptr() != module.c2[1].weight.data_ptr()
    (opt_g, _), (opt_c, _) = [(o["optimizer"], o["lr_scheduler"]) for o in module.configure_optimizers()]
    assert {g["momentum"] for g in opt_g.param_groups} == {0.0} and {g["momentum"] for g in opt_c.param_groups} == {0.9}
    with pytest.raises(ValueError, match="head_hidden"):
        MCD(tiny_net("segmentation"), head_hidden=24)


def test_every_forward_of_an_iteration_sees_the_joint_batch():
    net = tiny_net("classification")
    seen: list[int] = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    module = MCD(net, num_k=3, head_hidden=16, discrepancy_weight=0.3, balance_weight=0.03, lr=0.01)
    trainer = pl.Trainer(max_steps=6, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, tiny_datamodule("classification", batch_size=8))
    assert seen == [16] * 5  # one iteration (3 + num_k optimiser steps): A, B and three C, each over 8 + 8 images


def test_class_balance_loss_formula():
    z = torch.randn(6, 5)
    expected = -torch.log(torch.softmax(z, 1).mean(0) + 1e-6).mean()
    torch.testing.assert_close(class_balance_loss(z), expected)
    collapsed = torch.zeros(5, 5)
    collapsed[:, 0] = 10.0
    assert class_balance_loss(torch.eye(5) * 10) < class_balance_loss(collapsed)
