"""Recipe components for the kill-and-resume tests: a YAML-constructible learnable domain and a callback
that SIGKILLs its own process at a chosen iteration (set by the environment, so the rerun is the very same
command) and records the final metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from domadapt.data.base import ArrayDataset
from tests.conftest import random_domain

ROOT = Path(__file__).resolve().parents[2]
KILL_ENV = "DOMADAPT_TEST_KILL_AT"  # "<phase>:<iteration>[:<run dir name>]", phase in {train, validation}


class ColourDomain(ArrayDataset):
    """``tests.conftest.random_domain`` as a recipe component (class readable from colour)."""

    def __init__(self, task: str = "classification", n: int = 32, seed: int = 0, shift: float = 0.0,
                 height: int = 32, width: int = 32) -> None:
        d = random_domain(task, n, seed, shift=shift, size=(height, width))
        super().__init__(d.images, d.targets, d.classes, task=d.task, name=d.name)


class KillAt(pl.Callback):
    """SIGKILL this process when ``$DOMADAPT_TEST_KILL_AT`` says so; write ``final_metrics.json`` at the end."""

    def __init__(self) -> None:
        phase, at, where = (os.environ.get(KILL_ENV, "") + "::").split(":")[:3]
        self.phase, self.at, self.where = phase, int(at) if at else None, where

    @staticmethod
    def _done(trainer: pl.Trainer) -> int:
        return trainer.fit_loop.epoch_loop.batch_progress.total.processed

    def _maybe_kill(self, trainer: pl.Trainer, phase: str) -> None:
        here = not self.where or Path(trainer.default_root_dir).name == self.where  # e.g. one pipeline stage
        if self.at is not None and self.phase == phase and here and self._done(trainer) >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._maybe_kill(trainer, "train")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._maybe_kill(trainer, "validation")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        Path(trainer.default_root_dir, "final_metrics.json").write_text(json.dumps(metrics, sort_keys=True))


def run_domadapt(args: list[str], kill: str | None = None,
                 kill_writes: str | None = None) -> subprocess.CompletedProcess:
    """``python -m domadapt ARGS`` in a fresh process (one thread, repository root importable); with ``kill``
    set, :class:`KillAt` callbacks in its recipe SIGKILL it there (see :data:`KILL_ENV`); with
    ``kill_writes`` (``"translate:N"`` / ``"pseudo_label:N"``) it dies after that stage's N-th PNG
    (:mod:`tests.core.kill_writes`)."""
    from tests.core.kill_writes import WRITES_ENV

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "DOMADAPT_PROGRESS": "0"}
    env.pop(KILL_ENV, None)
    env.pop(WRITES_ENV, None)
    if kill:
        env[KILL_ENV] = kill
    if kill_writes:
        env[WRITES_ENV] = kill_writes
    entry = "tests.core.kill_writes" if kill_writes else "domadapt"
    return subprocess.run([sys.executable, "-m", entry, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)

class SaveRankState(pl.Callback):
    """At the end of training each process writes its module's parameters (``named_parameters``, frozen ones such as
    an EMA teacher's included) to ``rank<r>.pt`` in the run folder (a DDP run's ranks can then be compared)."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()}
        torch.save(state, Path(trainer.default_root_dir, f"rank{trainer.global_rank}.pt"))
