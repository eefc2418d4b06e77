"""SGD as the released DeepLab-V2 segmentation code (AdaptSegNet, ADVENT, BDL) really ran it.

Their optimiser gets the backbone parameters from ``get_1x_lr_params_NOscale`` (BDL ``model/deeplab.py:188-205``),
which walks ``b[i].modules()`` and yields ``j.parameters()`` for every module ``j``: a parameter is yielded once per
module that contains it. A bottleneck convolution is listed 3 times (its layer, its block, itself), a downsample
convolution 4 times, ``conv1`` once. torch 0.4's ``SGD.step`` then updates a parameter once per listing, each time
adding the weight decay to the gradient *in place*:

    for each listing of p:   g <- g + wd * p;   buf <- mu * buf + g (buf <- g the first time);   p <- p - lr * buf

so the backbone moves about 3x further per step than the nominal learning rate says (head : backbone about 3.3 : 1,
not 10 : 1). :class:`ReleasedSGD` applies exactly that: parameter ``i`` of a group is updated
``group["repeats"][i]`` times per step (1 when the group has no ``repeats``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def released_repeats(modules: Iterable[nn.Module]) -> dict[int, int]:
    """How many times ``get_1x_lr_params_NOscale`` lists each trainable parameter of ``modules``, by ``id``.

    A transcription of the released generator: for every module ``j`` in ``m.modules()`` of each ``m``, every
    ``requires_grad`` parameter of ``j.parameters()`` counts once.
    """
    counts: dict[int, int] = {}
    for m in modules:
        for j in m.modules():
            for p in j.parameters():
                if p.requires_grad:
                    counts[id(p)] = counts.get(id(p), 0) + 1
    return counts


class ReleasedSGD(torch.optim.Optimizer):
    """SGD with momentum where each parameter is updated ``repeats`` times per step (see the module docstring).

    Args:
        params: parameter groups; a group may carry ``repeats``, one int per parameter.
        lr: learning rate.
        momentum: momentum ``mu`` (no dampening, no Nesterov, as in the released code).
        weight_decay: L2 weight decay, added to the gradient in place once per listing.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        for g in self.param_groups:
            repeats = g.setdefault("repeats", [1] * len(g["params"]))
            if len(repeats) != len(g["params"]) or min(repeats, default=1) < 1:
                raise ValueError(f"ReleasedSGD: group {g.get('name', '?')!r} needs one repeat count >= 1 per parameter")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            lr, mu, wd = g["lr"], g["momentum"], g["weight_decay"]
            for p, k in zip(g["params"], g["repeats"]):
                if p.grad is None:
                    continue
                grad = p.grad.clone()  # the released code modifies p.grad; ours stays as autograd left it
                state = self.state[p]
                for _ in range(k):
                    if wd:
                        grad.add_(p, alpha=wd)
                    if mu:
                        buf = state.get("momentum_buffer")
                        state["momentum_buffer"] = buf = grad.clone() if buf is None else buf.mul_(mu).add_(grad)
                        p.add_(buf, alpha=-lr)
                    else:
                        p.add_(grad, alpha=-lr)
        return loss
