"""``channels_last`` memory format for every method: ``--trainer.callbacks+=domadapt.memory_format.ChannelsLast``.

On GPUs with tensor cores (and for mixed precision) convolutions run faster on NHWC tensors. The
callback converts the LightningModule's 4-D parameters and buffers (networks, discriminators,
generators) to ``torch.channels_last`` when fitting, validating, testing or predicting starts, and
the 4-D images of every batch before it reaches the module; PyTorch keeps the format through the
network. The maths is unchanged (outputs equal the NCHW ones up to floating-point summation order).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


def to_channels_last(batch: Any) -> Any:
    """``batch`` with every 4-D floating-point tensor in ``channels_last`` (dicts, lists, tuples walked)."""
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 and \
            batch.is_floating_point() else batch
    if isinstance(batch, dict):
        return {k: to_channels_last(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_channels_last(v) for v in batch)
    return batch


class ChannelsLast(pl.Callback):
    """Run the module and its input images in ``torch.channels_last`` (see the module docstring)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _convert_in_place(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        _convert_in_place(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        _convert_in_place(batch)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        _convert_in_place(batch)


def _convert_in_place(batch: Any) -> None:
    """Convert the images of a dict / list batch in place (hooks cannot return a new batch); nested
    containers are replaced by converted copies."""
    keys = batch.keys() if isinstance(batch, dict) else range(len(batch)) if isinstance(batch, list) else ()
    for k in keys:
        batch[k] = to_channels_last(batch[k])
