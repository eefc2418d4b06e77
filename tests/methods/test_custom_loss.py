"""A user's own AlignmentLoss, defined here (outside domadapt), plugs into a recipe by class_path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from domadapt.cli import main, run_lightning
from domadapt.losses import AlignmentLoss

ROOT = Path(__file__).resolve().parents[2]


class MeanDistance(AlignmentLoss):
    """Squared distance between the domains' mean features. Shape: (N, D), (M, D) -> ()."""

    input_kind = "features"
    supports = frozenset({"classification"})
    calls = 0

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.check_inputs(source, target)
        MeanDistance.calls += 1
        return (source.mean(0) - target.mean(0)).pow(2).sum()


class NotALoss(torch.nn.Module):
    def forward(self, source, target):
        return (source - target).sum()


def test_user_loss_runs_in_a_recipe(tmp_path):
    MeanDistance.calls = 0
    cli = run_lightning([
        "fit", "--config", str(ROOT / "recipes/digits/coral.yaml"),
        "--model.init_args.loss=tests.methods.test_custom_loss.MeanDistance",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=3", "--trainer.limit_val_batches=1",
        "--trainer.val_check_interval=3", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    ])
    assert isinstance(cli.model.loss, MeanDistance)
    assert MeanDistance.calls == 3
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss_adapt_step"]))
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_recipe_naming_a_non_alignment_loss_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(ROOT / "recipes/digits/coral.yaml"), "--print_config",
              "--model.init_args.loss=tests.methods.test_custom_loss.NotALoss"])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert "NotALoss" in err and "AlignmentLoss" in err
