"""Shared fixtures: tiny networks and in-memory domains so method tests run in seconds on CPU."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

from domadapt.data.base import ArrayDataset
from domadapt.data.datamodule import DomainAdaptationDataModule
from domadapt.data.transforms import Augment
from domadapt.structures import NetOutput


class TinySegNet(nn.Module):
    """A 3-layer fully-convolutional net honouring the network contract (for fast method tests)."""

    task = "segmentation"

    def __init__(self, num_classes: int = 4, num_features: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, num_features, 3, padding=1), nn.BatchNorm2d(num_features), nn.ReLU(),
                                  nn.Conv2d(num_features, num_features, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(num_features, num_classes, 1)
        self.num_classes, self.num_features = num_classes, num_features

    def forward(self, x: torch.Tensor) -> NetOutput:
        f = self.body(x)
        return NetOutput(self.head(f), f)


def random_domain(task: str, n: int, seed: int, shift: float = 0.0, size=(32, 32), k: int = 4) -> ArrayDataset:
    """Random images whose class is readable from colour (learnable), optionally colour-shifted."""
    rng = np.random.default_rng(seed)
    if task == "classification":
        y = rng.integers(0, k, n)
        img = rng.normal(40 + 50 * y[:, None, None, None] + shift, 20, (n, *size, 3))
        return ArrayDataset(img.clip(0, 255).astype(np.uint8), y, tuple("abcd"[:k]), name=f"cls{seed}")
    y = rng.integers(0, k, (n, size[0] // 8, size[1] // 8)).repeat(8, 1).repeat(8, 2).astype(np.uint8)
    img = rng.normal(40 + 50 * y[..., None] + shift, 20, (n, *size, 3))
    return ArrayDataset(img.clip(0, 255).astype(np.uint8), y, tuple("abcd"[:k]), task="segmentation", name=f"seg{seed}")


def tiny_datamodule(task: str, n: int = 32, batch_size: int = 8) -> DomainAdaptationDataModule:
    size = (32, 32) if task == "classification" else (32, 48)
    return DomainAdaptationDataModule(
        random_domain(task, n, 0, size=size), random_domain(task, n, 1, shift=30, size=size),
        target_val=random_domain(task, 16, 2, shift=30, size=size), source_val=random_domain(task, 16, 3, size=size),
        train_transform=Augment(), eval_transform=Augment(train=False), batch_size=batch_size)


def tiny_net(task: str) -> nn.Module:
    from domadapt.models import DigitsNet

    torch.manual_seed(0)
    return DigitsNet(num_classes=4, num_features=16) if task == "classification" else TinySegNet()


def build_loss(loss_cls, net: nn.Module):
    """Instantiate any AlignmentLoss with the network's widths where its constructor asks for them."""
    params = inspect.signature(loss_cls).parameters
    kw = {}
    if "in_features" in params:
        kw["in_features"] = net.num_features
    if "num_classes" in params:
        kw["num_classes"] = net.num_classes
    if "hidden" in params:
        kw["hidden"] = 16
    return loss_cls(**kw)


@pytest.fixture
def tiny_dm():
    return tiny_datamodule
