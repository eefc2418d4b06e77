"""Checkpoints that survive a kill: atomic writes, the previous good copy, random state, resume lookup.

* :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same directory and
  renames it into place, so a process killed while saving never leaves a truncated file under the
  final name. Before ``last.ckpt`` is replaced, the current one is kept as ``previous.ckpt``.
* :class:`RandomState` stores the global random generators (Python, NumPy, torch CPU and CUDA) in the
  checkpoint and restores them on resume, so dropout masks and anything else drawn from them continue
  as in an uninterrupted run. (The training data order has its own seeded state,
  :mod:`domadapt.data.resumable`.)
* :func:`resume_checkpoint` finds the checkpoint to resume from: ``last.ckpt`` when it is intact,
  else ``previous.ckpt`` with a one-line warning naming the damaged file.

Checkpoints hold only tensors, numbers, strings and containers of them, so they load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

LAST = "last.ckpt"
PREVIOUS = "previous.ckpt"


class CheckpointError(ValueError):
    """A checkpoint file is truncated or is not a checkpoint (the message names the file)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`~lightning_fabric.plugins.io.torch_io.TorchCheckpointIO` writing through a temporary
    file and ``os.replace``; ``last.ckpt``'s previous version is kept as ``previous.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            if path.name == LAST and path.is_file():
                os.replace(path, path.with_name(PREVIOUS))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def check_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` if it is a complete checkpoint archive, else a one-line :class:`CheckpointError`.

    ``torch.save`` writes a zip archive whose directory is at the end of the file, so a truncated
    file is caught here without unpickling anything.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({e}); expected a file written by "
                              "torch.save") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise CheckpointError(f"{path}: not a torch checkpoint (no data.pkl in the archive)")
    return path


def resume_checkpoint(dirpath: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from in ``dirpath``: ``last.ckpt`` if intact, else ``previous.ckpt``.

    Returns ``None`` when the directory holds neither (a fresh run). A damaged ``last.ckpt`` is
    reported with a warning naming it; when no intact checkpoint is left a :class:`CheckpointError`
    names the damaged file.
    """
    dirpath = Path(dirpath)
    last, previous = dirpath / LAST, dirpath / PREVIOUS
    problems = []
    for candidate in (last, previous):
        if not candidate.is_file():
            continue
        try:
            check_checkpoint(candidate)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        if problems:
            warnings.warn(f"{problems[0]}; resuming from {candidate} instead", stacklevel=2)
        return candidate
    if problems:
        raise CheckpointError(problems[0] + "; no intact checkpoint to resume from")
    return None


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimiser steps (or every epoch when ``None``), after
    every validation during training and at the end of training; no other checkpoint (``save_top_k=0``).

    A step whose batch is followed by a validation is saved *after* that validation: Lightning skips
    the validation of a batch whose end-of-batch checkpoint it resumes from, so a run killed during
    validation would otherwise never validate that point again.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_train_steps: int | None = None) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps)

    @staticmethod
    def _validation_follows(trainer: pl.Trainer) -> bool:
        loop = trainer.fit_loop.epoch_loop
        try:
            return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher)) and trainer.enable_validation
        except (AttributeError, TypeError):  # another Lightning version: save as usual
            return False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        flush = getattr(pl_module, "flush_train_log", None)  # the training logs due at this batch go in the checkpoint
        if callable(flush):
            flush(batch_idx)
        if not self._validation_follows(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.state.fn == "fit" and not trainer.sanity_checking and \
                self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or self._last_global_step_saved == trainer.global_step:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class RandomState(pl.Callback):
    """Saves and restores the global random generators with every checkpoint.

    State: ``{"python": random.getstate(), "numpy": (name, keys tensor, pos, has_gauss, cached),
    "torch": ByteTensor, "cuda": [ByteTensor per device]}`` — plain types and tensors only.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                      float(cached)),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
