"""Whole-batch loading of in-memory datasets whose transform is pixel-wise.

A dataset held in memory as arrays (embedded digits, the toy city, :class:`~domadapt.data.base.ArrayDataset`)
with a transform that maps every pixel value on its own — normalisation, no resize, crop, flip or jitter —
needs no per-sample pipeline: a batch is one fancy index into the arrays and one table lookup. On 32×32 digits
the per-sample path (albumentations, then collation of 64 dicts) costs about as much as the training step it
feeds; this path costs well under a millisecond a batch (0.7 ms for a source + target pair of 64 + 64 digits).

Images are transformed once for the whole array when that copy fits in memory (:class:`TransformedImages`).
The lookup table is the transform itself, run once on every value 0…255 of every channel
(:func:`pixel_table`), so a batch built here equals, bit for bit, the stack of the samples the per-sample path
gives. :class:`BatchedSamples` is what :meth:`DomainDataset.__getitems__` returns: the collated batch, which
:func:`collate_samples` (the DataModule's ``collate_fn``) hands on as it is, and also a sequence of the
per-sample dicts, so that any other ``collate_fn`` still sees samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

_RAMP = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # (256, 1, 3): every value, every channel


def pixel_table(transform: Callable[..., dict]) -> torch.Tensor:
    """``(3 · 256,)`` float32 table: entry ``256 · c + v`` is the transform's output for value ``v`` in channel ``c``.

    Args:
        transform: a pixel-wise transform ``transform(image=HWC uint8) -> {"image": (3, H, W) float}``.
    """
    return transform(image=_RAMP)["image"][:, :, 0].float().contiguous().view(-1)


def lookup(images: np.ndarray, table: torch.Tensor) -> torch.Tensor:
    """Apply a :func:`pixel_table` to a batch.

    Args:
        images: ``(N, H, W, 3)`` uint8.
        table: ``(3 · 256,)`` from :func:`pixel_table`.

    Returns:
        ``(N, 3, H, W)`` float32, ``out[n, c, y, x] = table[256 · c + images[n, y, x, c]]``.
    """
    index = torch.from_numpy(np.ascontiguousarray(images)).to(torch.int64) + torch.arange(0, 768, 256)
    return torch.take(table, index).permute(0, 3, 1, 2).contiguous()


PRECOMPUTE_BYTES = 512 * 2**20
"""Largest float32 copy of an in-memory image array that :class:`TransformedImages` keeps (embedded digits: 61 MiB
a split; the toy city at 64×128: 59 MiB)."""


class TransformedImages:
    """An in-memory image array under a :func:`pixel_table`, gathered by position.

    The whole array is transformed once when its float32 copy fits in ``budget`` bytes (a batch is then one
    index); a larger one is looked up batch by batch. Both give the same values.

    Args:
        images: ``(N, H, W, 3)`` uint8.
        table: ``(3 · 256,)`` from :func:`pixel_table`.
        budget: the most bytes the transformed copy may take.
    """

    def __init__(self, images: np.ndarray, table: torch.Tensor, budget: int = PRECOMPUTE_BYTES) -> None:
        self.images, self.table = images, table
        self.whole = None
        if images.size * 4 <= budget:
            self.whole = torch.cat([lookup(images[i:i + 1024], table) for i in range(0, len(images), 1024)])

    def __getitem__(self, positions: np.ndarray) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 of the images at ``positions`` ``(B,)``."""
        if self.whole is not None:
            return self.whole[torch.from_numpy(positions)]
        return lookup(self.images[positions], self.table)


class BatchedSamples(Sequence):
    """One batch, collated (:attr:`batch`), that also reads as the sequence of its samples.

    Args:
        batch: ``{key: (N, ...) tensor}``, a collated :class:`~domadapt.structures.Sample`.
    """

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["image"])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return {k: v[i] for k, v in self.batch.items()}


def collate_samples(samples: Sequence[dict]) -> dict:
    """``collate_fn`` of domadapt's loaders: a :class:`BatchedSamples` as it is, anything else by
    ``default_collate``."""
    return samples.batch if isinstance(samples, BatchedSamples) else default_collate(samples)
