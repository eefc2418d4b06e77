"""Shared data structures: samples, batches and network outputs (DESIGN.md §3).

A *sample* is a dict produced by every dataset::

    {"image": (C, H, W) float32, "label": () int64 | "mask": (H, W) int64,
     "domain": () int64, "index": () int64}

A training batch is ``{"source": Sample, "target": Sample}`` where every tensor gains a leading
batch dimension. The target sample carries no ``label`` / ``mask`` during training. Ignore index
is :data:`IGNORE_INDEX` (255).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, TypedDict

import torch

IGNORE_INDEX = 255
"""Label value that losses and metrics skip."""

Task = Literal["classification", "segmentation"]


class Sample(TypedDict, total=False):
    """One (collated) sample of a domain.

    Attributes:
        image: ``(C, H, W)`` float image, normalised (``(N, C, H, W)`` once collated).
        label: ``()`` int64 class index, classification only.
        mask: ``(H, W)`` int64 train ids, 255 = ignore, segmentation only.
        domain: ``()`` int64 domain id (sources ``0..S-1`` in the order given, target ``S``).
        index: ``()`` int64 position of the sample in its dataset.
    """

    image: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor
    domain: torch.Tensor
    index: torch.Tensor


class DomainBatch(TypedDict):
    """A training batch: labelled source(s) and unlabelled target."""

    source: Sample
    target: Sample


class NetOutput(NamedTuple):
    """What every network returns.

    Attributes:
        logits: ``(N, K)`` for classification or ``(N, K, H, W)`` for segmentation.
        features: the representation alignment losses consume, ``(N, D)`` or ``(N, D, h, w)``.
    """

    logits: torch.Tensor
    features: torch.Tensor


def target_key(task: Task) -> str:
    """Name of the ground-truth entry of a sample for ``task`` (``"label"`` or ``"mask"``)."""
    return "label" if task == "classification" else "mask"
