"""mmcv's linear warm-up, the power-1 poly schedule, AdamW and no-decay parameter groups of the base class."""

from __future__ import annotations

import pytest
import torch

from domadapt import schedules
from domadapt.methods import SourceOnly
from tests.conftest import tiny_net


def mmcv_linear_warmup(i: int, warmup_iters: int, ratio: float) -> float:
    """mmcv ``LrUpdaterHook.get_warmup_lr`` (``warmup='linear'``) as a factor of the regular rate, for i < W."""
    k = (1 - i / warmup_iters) * (1 - ratio)
    return 1 - k


@pytest.mark.parametrize("i", [0, 1, 10, 750, 1499])
def test_linear_warmup_is_mmcv_formula_inside_the_warmup(i):
    assert schedules.linear_warmup(i, 1500, 1e-6) == pytest.approx(mmcv_linear_warmup(i, 1500, 1e-6), rel=1e-12)


def test_linear_warmup_ends_at_one_and_zero_iters_means_none():
    assert schedules.linear_warmup(0, 1500, 1e-6) == pytest.approx(1e-6)
    assert schedules.linear_warmup(1500, 1500, 1e-6) == 1.0 and schedules.linear_warmup(40000, 1500) == 1.0
    assert schedules.linear_warmup(5, 0) == 1.0


def test_lr_lambda_is_poly1_times_warmup():
    module = SourceOnly(tiny_net("segmentation"), lr_schedule="poly1", schedule_horizon=40000, lr_warmup_iters=1500,
                        lr_warmup_ratio=1e-6)
    for i in (0, 100, 1499, 1500, 20000, 39999):
        regular = 1 - i / 40000  # mmcv PolyLrUpdaterHook(power=1, min_lr=0): (1 - iter / max_iters) ** 1
        expected = regular * (mmcv_linear_warmup(i, 1500, 1e-6) if i < 1500 else 1.0)
        assert module.lr_lambda(i) == pytest.approx(expected, rel=1e-12)


def test_warmup_arguments_are_checked():
    with pytest.raises(ValueError, match="lr_warmup_"):
        SourceOnly(tiny_net("segmentation"), lr_warmup_iters=-1)
    with pytest.raises(ValueError, match="lr_warmup_"):
        SourceOnly(tiny_net("segmentation"), lr_warmup_ratio=0.0)


def test_adamw_groups_take_lr_mults_betas_and_weight_decay():
    module = SourceOnly(tiny_net("segmentation"), lr=6e-5, optimizer="adamw", betas=(0.9, 0.999), weight_decay=0.01,
                        head_lr_mult=10.0)
    groups = [{"params": list(module.net.body.parameters()), "lr_mult": 1.0, "name": "backbone"},
              {"params": list(module.net.head.parameters()), "lr_mult": 10.0, "name": "head"}]
    opt = module.build_optimizer(groups)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([6e-5, 6e-4])
    assert all(g["betas"] == (0.9, 0.999) and g["weight_decay"] == 0.01 for g in opt.param_groups)


def test_no_decay_keys_zero_the_decay_of_matching_parameters_only():
    module = SourceOnly(tiny_net("segmentation"), lr=6e-5, optimizer="adamw", weight_decay=0.01,
                        no_decay_keys=("body.1",))  # body.1 is the BatchNorm
    groups = [{"params": list(module.net.body.parameters()), "lr_mult": 1.0, "name": "backbone"},
              {"params": list(module.net.head.parameters()), "lr_mult": 10.0, "name": "head"}]
    opt = module.build_optimizer(groups)
    names = {id(p): n for n, p in module.net.named_parameters()}
    for g in opt.param_groups:
        for p in g["params"]:
            assert g["weight_decay"] == (0.0 if names[id(p)].startswith("body.1.") else 0.01), names[id(p)]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(module.net.parameters()))
    assert [g["lr"] for g in opt.param_groups if g["weight_decay"] == 0.0] == pytest.approx([6e-5])


def test_unknown_optimizer_names_adamw_in_the_error():
    module = SourceOnly(tiny_net("segmentation"))
    module.hparams.optimizer = "rmsprop"
    with pytest.raises(ValueError, match="'adamw'"):
        module.build_optimizer(module.param_groups())
