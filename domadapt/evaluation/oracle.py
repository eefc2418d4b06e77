"""ORACLE model selection: the epoch that scored best on the *labelled target test split*.

Picking the checkpoint with the best target-test accuracy uses target labels that unsupervised
adaptation does not have; the DRT release does it (``model_best.pth.tar``, METHODS.md §3.4). domadapt
reports the last epoch by default. This callback exists only to reproduce such numbers side by side,
and everything it writes is labelled ``oracle``: the ``oracle/…`` log keys and ``oracle_best.ckpt``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch


class OracleBestCheckpoint(pl.Callback):
    """Track (and optionally save) the best validation epoch by a *target-labelled* metric — an oracle.

    After every validation it logs ``oracle/best_<monitor>`` (slashes become underscores),
    ``oracle/best_epoch`` and ``oracle/best_step`` to every logger, and with ``save=True`` writes
    ``<dirpath>/oracle_best.ckpt`` whenever the monitored value improves. Never use it for the default report.

    Args:
        monitor: metric to select by (``val/target/acc`` = the target test split in the DomainNet recipes).
        mode: ``"max"`` or ``"min"``.
        save: write the oracle-selected checkpoint.
        dirpath: where to write it (default ``<trainer.default_root_dir>/checkpoints``).
    """

    def __init__(self, monitor: str = "val/target/acc", mode: Literal["max", "min"] = "max", save: bool = True,
                 dirpath: str | None = None) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"OracleBestCheckpoint.mode: expected 'max' or 'min', got {mode!r}")
        self.monitor, self.mode, self.save, self.dirpath = monitor, mode, save, dirpath
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None

    @property
    def key(self) -> str:
        return "oracle/best_" + self.monitor.replace("/", "_")

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return
        if self._better(value):
            self.best, self.best_epoch, self.best_step = value, trainer.current_epoch, trainer.global_step
            if self.save and trainer.is_global_zero:
                root = Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoints"
                trainer.save_checkpoint(root / "oracle_best.ckpt")
        metrics = {self.key: float(self.best), "oracle/best_epoch": float(self.best_epoch),  # type: ignore[arg-type]
                   "oracle/best_step": float(self.best_step)}  # type: ignore[arg-type]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step, "monitor": self.monitor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best, self.best_epoch = state_dict.get("best"), state_dict.get("best_epoch")
        self.best_step = state_dict.get("best_step")


__all__ = ["OracleBestCheckpoint"]
