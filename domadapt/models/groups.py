"""Optimizer parameter groups shared by every network: pretrained backbone 1x, new head ``lr_mult``x.

Fine-tuning a pretrained backbone with a freshly initialised head at a larger learning rate is
the convention of most domain-adaptation papers (10x in DANN, CDAN, BDL's DeepLab-V2 classifier).
A method multiplies its base learning rate by each group's ``lr_mult``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def trainable(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    """Parameters of ``modules`` with ``requires_grad``, each once, in module order."""
    seen: set[int] = set()
    params = []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def backbone_head_groups(
    backbone: Iterable[nn.Module], head: Iterable[nn.Module], lr_mult_head: float = 10.0
) -> list[dict]:
    """The two groups ``[backbone (lr_mult 1), head (lr_mult lr_mult_head)]``.

    Args:
        backbone: modules holding pretrained parameters.
        head: modules created for the task (new layers).
        lr_mult_head: learning-rate multiplier of the head group.

    Returns:
        ``[{"params", "lr_mult": 1.0, "name": "backbone"}, {"params", "lr_mult", "name": "head"}]``;
        only ``requires_grad`` parameters, none twice (a parameter shared with the backbone stays
        in the backbone group).
    """
    backbone_params = trainable(backbone)
    taken = {id(p) for p in backbone_params}
    head_params = [p for p in trainable(head) if id(p) not in taken]
    return [
        {"params": backbone_params, "lr_mult": 1.0, "name": "backbone"},
        {"params": head_params, "lr_mult": float(lr_mult_head), "name": "head"},
    ]
