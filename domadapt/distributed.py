"""Small collective helpers for code that runs outside Lightning's loops (pseudo-labelling, reports).

Every function is a no-op (or the identity) without an initialised ``torch.distributed`` process group,
so the same code runs in one process and under DDP (``torchrun``, SLURM, Lightning's ``ddp`` strategy).
Counts travel as int64 tensors and are summed exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def initialized() -> bool:
    """Whether a process group with more than one process is running."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> tuple[int, int]:
    """``(world_size, rank)``; ``(1, 0)`` without a process group."""
    if not initialized():
        return 1, 0
    return torch.distributed.get_world_size(), torch.distributed.get_rank()


def _device() -> torch.device:
    """Where collectives run: the current CUDA device for NCCL, else the CPU."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if initialized():
        torch.distributed.barrier()


def sum_counts(*arrays: np.ndarray) -> list[np.ndarray]:
    """Element-wise sums over the processes of integer arrays (each the same shape on every rank).

    Returns:
        The summed arrays as int64, in the order given (copies of the inputs alone).
    """
    if not initialized():
        return [np.asarray(a, np.int64).copy() for a in arrays]
    sizes = [int(np.asarray(a).size) for a in arrays]
    flat = torch.from_numpy(np.concatenate([np.asarray(a, np.int64).ravel() for a in arrays])).to(_device())
    torch.distributed.all_reduce(flat)
    parts = np.split(flat.cpu().numpy(), np.cumsum(sizes)[:-1])
    return [p.reshape(np.asarray(a).shape) for p, a in zip(parts, arrays)]


def gather_lists(items: list[Any]) -> list[Any]:
    """Concatenation of every process's ``items`` (picklable), rank 0's first; ``items`` alone."""
    if not initialized():
        return list(items)
    out: list[list[Any]] = [[] for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(out, list(items))
    return [x for part in out for x in part]
