"""The oracle (best-on-target-test) selection is opt-in, labelled ``oracle/…``, and picks the true best epoch."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from domadapt.evaluation.oracle import OracleBestCheckpoint
from domadapt.methods import DRT
from domadapt.models import DynamicDigitsNet
from tests.conftest import tiny_datamodule


def test_oracle_callback_tracks_the_best_epoch_and_saves_it(tmp_path):
    torch.manual_seed(0)
    net = DynamicDigitsNet(num_classes=4, num_features=16, temperature=5.0, temperature_anneal=0.5)
    module = DRT(net=net, classifier_width=16, lr=0.05, discrepancy_weight=1.0)
    oracle = OracleBestCheckpoint(dirpath=str(tmp_path / "ckpt"))
    trainer = pl.Trainer(max_epochs=4, logger=CSVLogger(tmp_path, name="logs"), callbacks=[oracle],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(module, tiny_datamodule("classification"))
    rows = list(csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")))
    accs = [(int(r["epoch"]), float(r["val/target/acc"])) for r in rows if r.get("val/target/acc")]
    best = max(a for _, a in accs)
    assert len(accs) == 4
    assert oracle.best == pytest.approx(best) and oracle.best_epoch == next(e for e, a in accs if a == best)
    logged = [float(r["oracle/best_val_target_acc"]) for r in rows if r.get("oracle/best_val_target_acc")]
    assert logged[-1] == pytest.approx(best) and all(k.startswith("oracle/") for k in rows[0] if "best" in k)
    assert (tmp_path / "ckpt" / "oracle_best.ckpt").is_file()
    # Temperature annealing ran from progress: 5 -> 1 by half of training, kept in the checkpoint.
    assert float(net.conv[0].temperature) == pytest.approx(1.0)
    state = torch.load(tmp_path / "ckpt" / "oracle_best.ckpt", weights_only=False)
    assert "net.conv.0.temperature" in state["state_dict"]


def test_oracle_callback_refuses_unknown_mode():
    with pytest.raises(ValueError, match="mode: expected 'max' or 'min'"):
        OracleBestCheckpoint(mode="best")  # type: ignore[arg-type]
