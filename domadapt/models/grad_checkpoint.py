"""Gradient (activation) checkpointing of residual stages, for the large backbones.

``run_blocks(blocks, x, enabled=True)`` runs each residual block under
:func:`torch.utils.checkpoint.checkpoint` (non-reentrant): its activations are freed after the forward pass
and recomputed during backward, trading about one extra forward for the activation memory of the block
(DeepLabV2-ResNet-101 at 1280x720 keeps ~1/3 of its activations). Gradients are those of the plain
network.

BatchNorm layers in training mode would update their running statistics a second time during the
recomputation; the recomputation runs with their ``momentum`` set to 0, so running statistics advance once
per step, exactly as without checkpointing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [(bn.momentum, bn.num_batches_tracked.clone() if bn.num_batches_tracked is not None else None)
             for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0
        yield
    finally:
        for bn, (momentum, tracked) in zip(bns, saved):
            bn.momentum = momentum
            if tracked is not None:
                bn.num_batches_tracked.copy_(tracked)


def checkpointed(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` with its activations recomputed in backward (running statistics advanced once)."""
    calls = 0

    def run(inp: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return block(inp)
        with _frozen_running_stats(block):  # the recomputation in backward
            return block(inp)

    return checkpoint(run, x, use_reentrant=False)


def run_blocks(blocks: Iterable[nn.Module], x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """Apply ``blocks`` in sequence, each checkpointed when ``enabled`` and gradients are being recorded."""
    use = enabled and torch.is_grad_enabled()
    for block in blocks:
        x = checkpointed(block, x) if use else block(x)
    return x


def resnet_features(net: nn.Module, x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """A torchvision ResNet's forward (stem, ``layer1..4``, pool, flatten, ``fc``) with checkpointed blocks.

    Shape:
        ``(N, 3, H, W) -> net.fc((N, C))``.
    """
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = run_blocks(layer, x, enabled)
    return net.fc(torch.flatten(net.avgpool(x), 1))
