"""What every training step does with its loss terms: stop on a non-finite one, and log them in windows.

Lightning's ``LightningModule.log`` costs about a millisecond a call on a CPU (it re-homes its result object on
every call), as much as a tenth of a digits training step for a method that logs a few terms. Lightning writes
training values to its loggers only every ``trainer.log_every_n_steps`` batches, so :class:`TrainingTerms` keeps
a running, batch-size-weighted sum of each term and calls ``log`` once per term per window:

* on the batches on which Lightning writes to its loggers (iterations ``n, 2n, …``), the last batch of an epoch
  and the last step, it logs the window's mean ``Σ_i b_i v_i / Σ_i b_i`` (``b_i`` the batch size of batch ``i``)
  with ``batch_size = Σ_i b_i``;
* so what a logger receives at iteration ``kn`` is the mean over iterations ``(k-1)n+1 … kn``, and the epoch mean
  Lightning computes from the windows (weighted by their ``batch_size``) is the mean over every batch.

With ``log_every_n_steps: 1`` every batch is logged on its own, as before. The open windows travel in checkpoints
(``train_log_window``), so a resumed run logs the epoch means an uninterrupted run logs.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class TrainingTerms:
    """Mixin for a LightningModule (before ``pl.LightningModule`` in the bases): :meth:`check_finite`,
    :meth:`log_terms` / :meth:`log_train` and the window flush in ``on_train_batch_end`` (a subclass that overrides
    that hook calls ``super().on_train_batch_end(...)``)."""

    def check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Stop training with a message naming the iteration and the term when a loss is NaN/Inf.

        The check runs before ``backward``, so the weights (and the last checkpoint) stay good.
        """
        for name, value in terms.items():
            if not torch.isfinite(value.detach()).all():
                raise FloatingPointError(
                    f"non-finite loss at training iteration {self.iteration} (global step {self.global_step}): "
                    f"term `{name}` = {value.detach().float().item()}; training stopped, the last checkpoint is kept"
                )

    def log_terms(self, terms: dict[str, torch.Tensor], batch_size: int, prog_bar: tuple[str, ...] = ("loss",)) -> None:
        """Log every term as ``train/<name>`` (step and epoch means; those named in ``prog_bar`` on the bar)."""
        for k, v in terms.items():
            self.log_train(f"train/{k}", v, batch_size=batch_size, prog_bar=k in prog_bar)

    def log_train(self, name: str, value: torch.Tensor | float, batch_size: int = 1, on_step: bool = True,
                  on_epoch: bool = True, prog_bar: bool = False) -> None:
        """Add ``value`` (a scalar) of this batch to the window of ``name``; logged when the window closes."""
        value = torch.as_tensor(value).detach().float() * batch_size
        window: dict[str, list[Any]] = vars(self).setdefault("_train_window", {})
        if name in window:
            window[name][0] = window[name][0] + value
            window[name][1] += batch_size
        else:
            window[name] = [value, batch_size, on_step, on_epoch, prog_bar]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.flush_train_log(batch_idx)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["train_log_window"] = {k: list(v) for k, v in vars(self).get("_train_window", {}).items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        vars(self)["_train_window"] = {k: list(v) for k, v in checkpoint.get("train_log_window", {}).items()}

    def flush_train_log(self, batch_idx: int | None = None) -> None:
        """Log the mean of every open window and close it, when training batch ``batch_idx`` (just finished) ends a
        window, or now (``None``). Lightning calls the callbacks' ``on_train_batch_end`` before the module's: a
        callback that reads this batch's values or saves a checkpoint there calls this first (as
        :class:`~domadapt.checkpointing.LastCheckpoint` does); a second call finds the windows closed."""
        if batch_idx is not None:
            trainer: pl.Trainer = self.trainer
            done = self.iteration + 1  # this batch is not counted as completed until after the hook
            if not (done % max(int(trainer.log_every_n_steps), 1) == 0 or batch_idx + 1 >= trainer.num_training_batches
                    or trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step):
                return
        window: dict[str, list[Any]] = vars(self).get("_train_window", {})
        for name, (total, weight, on_step, on_epoch, prog_bar) in window.items():
            self.log(name, total / weight, on_step=on_step, on_epoch=on_epoch, prog_bar=prog_bar, batch_size=weight)
        window.clear()
