"""Training data order that survives a kill: seeded, per-sample augmentation seeds, mid-epoch resume.

A run killed at iteration ``i`` and resumed from its last checkpoint must see exactly the batches an
uninterrupted run sees. Three things make that true here:

* **The order is a pure function of** ``(seed, epoch, pass)``. :class:`ResumableRandomSampler` draws a
  permutation from ``numpy.random.default_rng((seed, epoch, pass))``; ``pass`` counts the restarts of
  the loader within one epoch (Lightning's ``max_size_cycle`` restarts the shorter of the source and
  target loaders). No global random state is read.
* **Each draw carries its augmentation seed.** Indices are :class:`SeededIndex` values (plain ``int``
  subclasses, so every ``Dataset`` accepts them) whose ``seed`` the dataset hands to its transform
  (:meth:`domadapt.data.transforms.Augment.reseed`) before augmenting: flips and crops depend on the
  draw, not on which process or worker loads it, nor on what was prefetched before a checkpoint.
* **A resumed loader skips what was consumed.** :meth:`ResumableRandomSampler.resume` is called by the
  DataModule with the epoch and the number of batches the restored trainer has already processed; the
  next pass starts at the right pass and position.

Distributed: the global order is the same on every rank; rank ``r`` keeps positions ``r, r + R, …``
(padding by repeating the first indices, as :class:`~torch.utils.data.DistributedSampler` does), so
``R`` processes together see what one process sees.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from domadapt import distributed

SEED_SPACE = 2**31 - 1


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``, defaults from ``torch.distributed`` when it is initialised, else ``(1, 0)``."""
    world, this = distributed.world()
    num_replicas = world if num_replicas is None else num_replicas
    rank = this if rank is None else rank
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"sampler: expected num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, "
                         f"{rank}")
    return int(num_replicas), int(rank)


class SeededIndex(int):
    """A dataset index carrying the seed of its augmentation (``int(idx)`` is the index)."""

    seed: int

    def __new__(cls, index: int, seed: int) -> SeededIndex:
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):  # DataLoader workers receive indices through pickling
        return SeededIndex, (int(self), self.seed)

    def shifted(self, offset: int) -> SeededIndex:
        """The same draw at index ``self - offset`` (for concatenated datasets)."""
        return SeededIndex(int(self) - offset, self.seed)


def seed_of(index: Any) -> int | None:
    """The augmentation seed an index carries, or ``None`` for a plain ``int``."""
    return getattr(index, "seed", None)


class SeededConcatDataset(ConcatDataset):
    """:class:`~torch.utils.data.ConcatDataset` that keeps a :class:`SeededIndex`'s seed when it maps the
    index into one of its parts (the base class returns a plain ``int``)."""

    def __getitem__(self, idx: int):
        if not isinstance(idx, SeededIndex):
            return super().__getitem__(idx)
        if idx < 0:
            raise ValueError("SeededConcatDataset: negative indices are not supported with seeds")
        part = bisect.bisect_right(self.cumulative_sizes, int(idx))
        offset = self.cumulative_sizes[part - 1] if part > 0 else 0
        return self.datasets[part][idx.shifted(offset)]


class ResumableRandomSampler(DistributedSampler):
    """Shuffled, seeded, resumable sampler; a :class:`~torch.utils.data.DistributedSampler` so that
    Lightning uses it as it is under DDP and calls :meth:`set_epoch`.

    Args:
        size: number of samples in the dataset.
        seed: base seed of the order and of the per-sample augmentation seeds.
        num_replicas: processes sharing the order (default: the process group's world size, else 1).
        rank: this process (default: its rank in the process group, else 0).

    Pass ``p`` of epoch ``e`` (``p`` = 0, 1, … counts the restarts within the epoch) yields
    ``perm[rank::R]`` where ``perm`` is the permutation of ``default_rng((seed, e, p))``, and every
    index carries ``seeds[j]`` drawn from the same generator.
    """

    def __init__(self, size: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None) -> None:
        if size < 0:
            raise ValueError(f"ResumableRandomSampler.size: expected >= 0, got {size}")
        self.size, self.seed, self.epoch = int(size), int(seed), 0
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.dataset, self.shuffle, self.drop_last = None, True, False  # DistributedSampler's attributes
        self._set_size(self.size)
        self._pass = 0
        self._skip = 0  # samples of this rank to skip at the start of the next pass (resume)

    def _set_size(self, total: int) -> None:
        """Draw ``total`` samples a pass over all ranks: ``num_samples`` per rank, ``total_size`` globally."""
        if total < 0:
            raise ValueError(f"sampler: expected num_samples >= 0, got {total}")
        self.size = int(total)
        self.num_samples = math.ceil(self.size / self.num_replicas)  # per rank (DistributedSampler's name)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``; passes restart from 0 when the epoch changes."""
        if int(epoch) != self.epoch:
            self.epoch, self._pass, self._skip = int(epoch), 0, 0

    def resume(self, epoch: int, passes: int = 0, skip: int = 0) -> None:
        """Continue epoch ``epoch`` where a killed run stopped: the next :meth:`__iter__` is pass
        ``passes`` of the epoch and starts after its first ``skip`` samples of this rank.

        A loader with ``drop_last`` consumes ``len(loader) * batch_size`` samples a pass, so
        after ``b`` batches: ``passes = b // len(loader)``, ``skip = (b % len(loader)) * batch_size``
        (:func:`resume_loader`).
        """
        self.epoch, self._pass, self._skip = int(epoch), max(int(passes), 0), max(int(skip), 0)

    def __len__(self) -> int:
        return self.num_samples

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """``(size,)`` global order of one pass (subclasses may draw differently)."""
        return rng.permutation(self.size)

    def columns(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """The global draw of one pass as parallel columns ``(order, *extra)``: :meth:`order` alone here; a
        subclass may add per-draw values (e.g. the class a draw was made for), handed to :meth:`make_index`."""
        return (self.order(rng),)

    def make_index(self, index: int, seed: int, *extra: int) -> SeededIndex:
        """The index yielded for one draw (``extra``: that draw's values of the extra :meth:`columns`)."""
        return SeededIndex(index, seed)

    def _global(self) -> tuple[np.ndarray, ...]:
        """``(order, seeds, *extra)`` of the current pass, padded to ``total_size``."""
        rng = np.random.default_rng((self.seed, self.epoch, self._pass))
        order, *extra = self.columns(rng)
        seeds = rng.integers(0, SEED_SPACE, size=len(order))
        cols = [order, seeds, *extra]
        if len(order) and len(order) < self.total_size:  # pad so every rank gets the same count
            pad = self.total_size - len(order)
            cols = [np.concatenate([c, np.resize(c, pad)]) for c in cols]
        return tuple(cols)

    def __iter__(self) -> Iterator[SeededIndex]:
        cols = self._global()
        skip, self._skip = self._skip, 0
        self._pass += 1
        mine = slice(self.rank, self.total_size, self.num_replicas)
        for index, seed, *extra in list(zip(*(c[mine].tolist() for c in cols)))[skip:]:
            yield self.make_index(index, seed, *extra)


def resume_loader(loader: DataLoader, epoch: int, batches: int) -> None:
    """Position ``loader`` (over a :class:`ResumableRandomSampler`) after ``batches`` batches of ``epoch``."""
    if isinstance(loader.sampler, ResumableRandomSampler) and len(loader) > 0:
        passes, rest = divmod(max(int(batches), 0), len(loader))
        loader.sampler.resume(epoch, passes, rest * int(loader.batch_size))


class ResumableLoader(DataLoader):
    """A training :class:`~torch.utils.data.DataLoader` over a :class:`ResumableRandomSampler`.

    It exposes ``state_dict`` / ``load_state_dict`` so that Lightning treats it as resumable: the state
    records the sampler's seed, and loading a checkpoint made with another seed is refused (the resumed
    run would not continue the same order). The position itself is restored by the DataModule from
    the trainer's progress (:meth:`ResumableRandomSampler.resume`), which counts consumed batches
    exactly, where a count of yielded batches would include Lightning's prefetched one.
    """

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.sampler.seed, "size": self.sampler.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        if state and state != mine:
            raise ValueError(f"resuming a training loader saved with {state} but configured with {mine}: "
                             "the data order would not continue (different seed or dataset size)")
