"""Pure schedules of training progress ``p in [0, 1]``.

Every schedule is a pure function of progress so that it resumes exactly from a checkpoint: the
progress comes from the trainer's ``global_step`` and the configured horizon, never from a hidden
counter.
"""

from __future__ import annotations

import math
from typing import Literal

ScheduleName = Literal["constant", "linear", "dann", "poly", "inv"]


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


def inv(p: float, gamma: float = 10.0, power: float = 0.75) -> float:
    """DANN learning-rate annealing ``(1 + gamma * p) ** -power``."""
    return (1.0 + gamma * min(max(p, 0.0), 1.0)) ** (-power)


def multistep(p: float, milestones: tuple[float, ...] | list[float] = (), gamma: float = 0.1) -> float:
    """Step decay ``gamma ** #{m in milestones : m <= p}`` (e.g. DRT's x0.1 at epochs 5 and 10 of 15
    is ``milestones = (1/3, 2/3)``). Not in :data:`SCHEDULES`: it needs its milestones."""
    p = min(max(p, 0.0), 1.0)
    return float(gamma ** sum(1 for m in milestones if m <= p))


SCHEDULES = {"constant": constant, "linear": linear, "dann": dann, "poly": poly, "inv": inv}


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
