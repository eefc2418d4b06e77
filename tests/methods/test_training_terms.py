"""Windowed training logs (`domadapt.methods.training_terms`): what a logger receives every `log_every_n_steps`
batches is the batch-size-weighted mean of the window, the epoch mean is the mean over every batch, a window ends at
the end of an epoch and at the last step, and one log per batch is what `log_every_n_steps: 1` gives."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger

from domadapt.methods.base import TrainingProgress
from domadapt.methods.training_terms import TrainingTerms

VALUES = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]  # one scalar per batch; batch b has b + 1 samples


class ListLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict]] = []

    name, version = "list", 0

    @property
    def experiment(self):
        return None

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


class Terms(TrainingTerms, TrainingProgress, pl.LightningModule):
    """Logs ``VALUES[i]`` for batch ``i`` with weight ``i + 1``; a constant ``on_epoch=False`` term beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        i = int(batch[0])
        self.log_train("train/x", VALUES[i], batch_size=i + 1)
        self.log_train("train/w", 0.5, on_epoch=False)
        return (self.w - 1.0) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(every: int, epochs: int = 1, steps: int = -1) -> list[tuple[int, dict]]:
    logger = ListLogger()
    data = torch.utils.data.DataLoader(torch.arange(len(VALUES)), batch_size=1)
    pl.Trainer(max_epochs=epochs, max_steps=steps, log_every_n_steps=every, logger=logger, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, accelerator="cpu").fit(Terms(), data)
    return logger.rows


def weighted_mean(batches: range) -> float:
    return sum(VALUES[i] * (i + 1) for i in batches) / sum(i + 1 for i in batches)


def test_the_logger_gets_window_means_and_the_exact_epoch_mean():
    rows = fit(every=4)
    steps = [(step, m["train/x_step"]) for step, m in rows if "train/x_step" in m]
    assert [s for s, _ in steps] == [3, 7]  # Lightning writes after iterations 4 and 8
    assert [v for _, v in steps] == pytest.approx([weighted_mean(range(0, 4)), weighted_mean(range(4, 8))])
    epoch = [m["train/x_epoch"] for _, m in rows if "train/x_epoch" in m]
    assert epoch == pytest.approx([weighted_mean(range(10))])  # batches 8, 9 close at the end of the epoch
    assert all(m["train/w"] == pytest.approx(0.5) for _, m in rows if "train/w" in m)


def test_one_batch_windows_log_every_value():
    rows = fit(every=1)
    assert [m["train/x_step"] for _, m in rows if "train/x_step" in m] == pytest.approx(VALUES)


def test_the_last_step_closes_its_window():
    module_rows = fit(every=50, steps=3)
    epoch = [m["train/x_epoch"] for _, m in module_rows if "train/x_epoch" in m]
    assert epoch == pytest.approx([weighted_mean(range(3))])


def test_a_non_finite_term_stops_training_with_its_name():
    module = Terms()
    with pytest.raises(FloatingPointError, match="term `pseudo` = nan"):
        module.check_finite({"task": torch.tensor(1.0), "pseudo": torch.tensor(float("nan"))})
