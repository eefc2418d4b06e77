"""Every method and translator (found by listing, :mod:`tests.method_cases`) trains a few steps, logs finite losses
and metrics, and round-trips through a checkpoint with identical predictions and weights; FeatureAlignment runs with
every suitable loss."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

import domadapt
from domadapt.losses import LOSSES, CORALLoss
from domadapt.methods import METHODS, TRANSLATORS, FeatureAlignment
from tests.conftest import TinySegNet, build_loss, tiny_datamodule, tiny_net
from tests.method_cases import CASES

def fit(module, datamodule, tmp_path, iterations=4):
    trainer = pl.Trainer(max_steps=iterations * module.optimizer_steps_per_batch, val_check_interval=iterations,
                         limit_val_batches=2, logger=CSVLogger(tmp_path), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         num_sanity_val_steps=0)
    trainer.fit(module, datamodule)
    return trainer


def test_list_methods_matches_registry():
    assert domadapt.list_methods() == sorted(METHODS)
    assert domadapt.list_translators() == sorted(TRANSLATORS) == ["Translation"]
    assert [str(case) for case in CASES] == domadapt.list_methods() + domadapt.list_translators()
    assert {"SourceOnly", "DANN", "CDAN", "MCD", "FeatureAlignment", "OutputSpaceAdversarial", "AdvEnt"} <= set(METHODS)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_method_trains_logs_and_roundtrips_checkpoint(case, tmp_path):
    module = case.build()
    trainer = fit(module, case.datamodule(), tmp_path)
    m = trainer.callback_metrics
    assert all(math.isfinite(float(m[key])) for key in case.train_keys)
    low, high = case.val_range
    for domain in ("target", "source"):
        assert low <= float(m[f"val/{domain}/{case.val_metric}"]) <= high

    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = case.reload(path)
    x = case.example()
    assert torch.equal(case.predict(module, x), case.predict(loaded, x))
    reloaded = loaded.state_dict()
    for key, value in module.state_dict().items():  # every part: discriminators and second generator too
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, reloaded[key]), key


ALIGNABLE = [n for n, c in LOSSES.items() if not c.alternating]


@pytest.mark.parametrize("loss_name", ALIGNABLE)
def test_feature_alignment_with_every_loss(loss_name, tmp_path):
    cls = LOSSES[loss_name]
    task = "classification" if "classification" in cls.supports else "segmentation"
    net = tiny_net(task)
    module = FeatureAlignment(net=net, loss=build_loss(cls, net), lr=0.01)
    trainer = fit(module, tiny_datamodule(task), tmp_path, iterations=3)
    assert math.isfinite(float(trainer.callback_metrics["train/loss_adapt_step"]))


def test_alternating_loss_is_refused_by_feature_alignment():
    net = tiny_net("classification")
    with pytest.raises(TypeError, match="needs alternating optimiser steps"):
        FeatureAlignment(net=net, loss=LOSSES["ClassifierDiscrepancyLoss"]())


def test_not_an_alignment_loss_is_refused():
    with pytest.raises(TypeError, match="expected a subclass of domadapt.losses.AlignmentLoss"):
        FeatureAlignment(net=tiny_net("classification"), loss=torch.nn.MSELoss())


def test_network_without_features_is_refused(tmp_path):
    class LogitsOnly(TinySegNet):
        task = "classification"

        def forward(self, x):
            return self.head(self.body(x)).mean((2, 3))

    module = FeatureAlignment(net=LogitsOnly(), loss=CORALLoss())
    with pytest.raises(TypeError, match="expected NetOutput"):
        fit(module, tiny_datamodule("classification"), tmp_path, iterations=1)


def test_segmentation_method_refuses_classifier():
    with pytest.raises(TypeError, match="expected a segmentation network"):
        METHODS["OutputSpaceAdversarial"](net=tiny_net("classification"))


def test_nan_loss_stops_with_step_and_term(tmp_path):
    class Exploding(CORALLoss):
        def forward(self, source, target):
            return super().forward(source, target) * float("nan")

    module = FeatureAlignment(net=tiny_net("classification"), loss=Exploding())
    with pytest.raises(FloatingPointError, match=r"training iteration 0 .*term `adapt`"):
        fit(module, tiny_datamodule("classification"), tmp_path, iterations=2)


def test_progress_is_restored_from_trainer_state(tmp_path):
    net = tiny_net("classification")
    module = METHODS["DANN"](net=net, hidden=16, schedule_horizon=8)
    fit(module, tiny_datamodule("classification"), tmp_path, iterations=4)
    assert module.iteration == 4 and module.progress == pytest.approx(0.5)


@pytest.mark.parametrize("bound", ["max_steps", "max_epochs", "both"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_schedule_horizon_counts_iterations_under_max_steps_and_max_epochs(case, bound, tmp_path):
    """The horizon of every method is the run's length in iterations (batches), whatever bounds the run: Lightning's
    max_steps counts optimiser steps (7 per batch for MCD with num_k 4, 2 for Translation), max_epochs counts
    batches."""
    module = case.build(**({"num_k": 4} if case.name == "MCD" else {}))
    k = module.optimizer_steps_per_batch
    dm = case.datamodule(n=32, batch_size=8)  # 4 batches per epoch
    limits = {"max_steps": dict(max_steps=6 * k, max_epochs=-1), "max_epochs": dict(max_epochs=3, max_steps=-1),
              "both": dict(max_epochs=3, max_steps=2 * k)}[bound]
    trainer = pl.Trainer(**limits, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", limit_val_batches=0)
    trainer.fit(module, dm)
    assert module.horizon == {"max_steps": 6, "max_epochs": 12, "both": 2}[bound]
    assert module.iteration == module.horizon  # the run ends where the schedule does
