"""Evaluation under DDP without duplicated or dropped samples.

Lightning's default distributed sampler pads every rank to the same length by repeating samples, which
would count some images twice in a confusion matrix. :class:`ShardSampler` gives rank ``r`` of ``R`` the
indices ``r, r + R, …`` and nothing else; the per-rank confusion matrices (torchmetrics states) are then
summed, so metrics equal the single-process figures exactly. It is a
:class:`~torch.utils.data.DistributedSampler` subclass so that Lightning keeps it as it is.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler

from domadapt.data.resumable import _world


class ShardSampler(DistributedSampler):
    """In-order, unpadded shard of ``range(size)`` for this rank (evaluation and prediction).

    Args:
        size: number of samples.
        num_replicas: processes (default: the process group's world size, else 1).
        rank: this process (default: its rank in the process group, else 0).
    """

    def __init__(self, size: int, num_replicas: int | None = None, rank: int | None = None) -> None:
        self.size = int(size)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.dataset, self.shuffle, self.drop_last, self.epoch, self.seed = None, False, False, 0, 0
        self.num_samples = len(range(self.rank, self.size, self.num_replicas))
        self.total_size = self.size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
