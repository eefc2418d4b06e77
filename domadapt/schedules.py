"""Pure schedules of training progress ``p in [0, 1]``.

Every schedule is a pure function of progress so that it resumes exactly from a checkpoint: the
progress comes from the trainer's ``global_step`` and the configured horizon, never from a hidden
counter.
"""

from __future__ import annotations

import math
from typing import Literal

ScheduleName = Literal["constant", "linear", "dann", "poly", "poly1", "inv"]


def constant(p: float) -> float:
    """Always 1."""
    return 1.0


def linear(p: float) -> float:
    """Ramp ``p`` clipped to ``[0, 1]``."""
    return min(max(p, 0.0), 1.0)


def dann(p: float, gamma: float = 10.0) -> float:
    """Ganin & Lempitsky (2015) ramp ``2 / (1 + exp(-gamma * p)) - 1``: 0 at ``p=0``, ->1."""
    return 2.0 / (1.0 + math.exp(-gamma * min(max(p, 0.0), 1.0))) - 1.0


def poly(p: float, power: float = 0.9) -> float:
    """DeepLab polynomial decay ``(1 - p) ** power``."""
    return (1.0 - min(max(p, 0.0), 1.0)) ** power


def poly1(p: float) -> float:
    """Polynomial decay of power 1, ``1 - p``: mmcv's ``PolyLrUpdaterHook(power=1.0, min_lr=0.0)`` that DAFormer's
    ``poly10warm`` schedule uses (DAFormer@e6f6e04 configs/_base_/schedules/poly10warm.py:7-14)."""
    return poly(p, 1.0)


def linear_warmup(step: int, warmup_iters: int, ratio: float = 1e-6) -> float:
    """mmcv's linear learning-rate warm-up factor, multiplying the regular schedule's rate::

        w(i) = 1 - (1 - ratio) (1 - i / warmup_iters)   for i < warmup_iters, else 1

    (mmcv ``LrUpdaterHook.get_warmup_lr``, ``warmup='linear'``: ``k = (1 - i / W)(1 - ratio)``, ``lr = regular (1 - k)``,
    applied before iteration ``i`` while ``i < W``; mmcv@0087cac mmcv/runner/hooks/lr_updater.py). ``w(0) = ratio``,
    rising linearly to 1 at ``i = W``. ``warmup_iters <= 0`` means no warm-up.
    """
    if warmup_iters <= 0 or step >= warmup_iters:
        return 1.0
    return 1.0 - (1.0 - ratio) * (1.0 - max(step, 0) / warmup_iters)


def inv(p: float, gamma: float = 10.0, power: float = 0.75) -> float:
    """DANN learning-rate annealing ``(1 + gamma * p) ** -power``."""
    return (1.0 + gamma * min(max(p, 0.0), 1.0)) ** (-power)


def multistep(p: float, milestones: tuple[float, ...] | list[float] = (), gamma: float = 0.1) -> float:
    """Step decay ``gamma ** #{m in milestones : m <= p}`` (e.g. DRT's x0.1 at epochs 5 and 10 of 15
    is ``milestones = (1/3, 2/3)``). Not in :data:`SCHEDULES`: it needs its milestones."""
    p = min(max(p, 0.0), 1.0)
    return float(gamma ** sum(1 for m in milestones if m <= p))


SCHEDULES = {"constant": constant, "linear": linear, "dann": dann, "poly": poly, "poly1": poly1, "inv": inv}


def get_schedule(name: str):
    """Return the schedule called ``name``; raises ``ValueError`` listing the valid names."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}") from None


def progress(step: int, horizon: int) -> float:
    """Training progress ``step / horizon`` clipped to ``[0, 1]``; ``horizon <= 0`` gives 0."""
    if horizon <= 0:
        return 0.0
    return min(max(step / horizon, 0.0), 1.0)
