"""Gradient reversal (Ganin & Lempitsky 2015) and its coefficient schedule.

The coefficient is an attribute set by the owner (a loss or a method) from training progress, never
a counter inside the layer: a resumed run that sets the same progress gets the same coefficient.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from domadapt import schedules

CoeffSchedule = Literal["dann", "constant", "linear"]


class GradientReversalFunction(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``-coeff`` backwards."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)  # a new view, so autograd records this node

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad_output, None


def reverse_gradient(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Functional gradient reversal: ``y = x``, ``dL/dx = -coeff * dL/dy``."""
    return GradientReversalFunction.apply(x, coeff)


class GradientReversal(nn.Module):
    """Gradient-reversal layer with a ``coeff`` attribute the owner updates.

    Args:
        coeff: initial reversal coefficient ``lambda`` (the owner usually overwrites it each step
            from :func:`grl_coefficient`).

    Shape:
        any -> same.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x: Tensor) -> Tensor:
        return reverse_gradient(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff:g}"


def grl_coefficient(
    p: float,
    max_coeff: float = 1.0,
    gamma: float = 10.0,
    min_coeff: float = 0.0,
    schedule: CoeffSchedule = "dann",
) -> float:
    """Reversal coefficient as a pure function of training progress ``p`` in ``[0, 1]``.

    ``lambda(p) = min_coeff + (max_coeff - min_coeff) * r(p)`` with the ramp ``r``:

    * ``"dann"``: ``2 / (1 + exp(-gamma p)) - 1`` (Ganin et al. 2016, JMLR; 0 at ``p=0``, about 1
      from ``p ~ 0.5`` for ``gamma = 10``);
    * ``"linear"``: ``p``;
    * ``"constant"``: 1, i.e. always ``max_coeff``.

    With the default ``min_coeff = 0`` this is the paper's schedule; a positive ``min_coeff``
    starts the reversal above zero, which short runs need (a ramp from 0 stalls them).

    Args:
        p: training progress, clipped to ``[0, 1]``.
        max_coeff: coefficient reached at the end of the ramp.
        gamma: steepness of the ``"dann"`` ramp.
        min_coeff: coefficient at ``p = 0``.
        schedule: ramp shape.

    Returns:
        The coefficient as a Python float.
    """
    if schedule == "dann":
        ramp = schedules.dann(p, gamma)
    elif schedule == "linear":
        ramp = schedules.linear(p)
    elif schedule == "constant":
        ramp = 1.0
    else:
        raise ValueError(f"grl_coefficient: unknown schedule {schedule!r}; expected 'dann', 'constant' or 'linear'")
    return float(min_coeff + (max_coeff - min_coeff) * ramp)


__all__ = ["CoeffSchedule", "GradientReversal", "GradientReversalFunction", "grl_coefficient", "reverse_gradient"]
