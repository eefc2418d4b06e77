"""Deterministic fake models and datasets for pseudo-label tests (NumPy references can recompute them)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from domadapt.data.base import ArrayDataset
from domadapt.structures import NetOutput

K = 3


class FixedSeg(nn.Module):
    """Per-pixel linear classifier with fixed weights: logits = W · rgb + b (no spatial context)."""

    task = "segmentation"
    num_classes = K
    num_features = 3

    def __init__(self, scale: float = 4.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, K, 1)
        with torch.no_grad():
            self.conv.weight.copy_(scale * torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]).view(K, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> NetOutput:
        return NetOutput(self.conv(x), x)


class FixedCls(nn.Module):
    """Mean colour -> linear classifier."""

    task = "classification"
    num_classes = K
    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, K)
        with torch.no_grad():
            self.fc.weight.copy_(6 * torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> NetOutput:
        f = x.mean((2, 3))
        return NetOutput(self.fc(f), f)


def seg_dataset(n: int = 6, size=(12, 16), seed: int = 0, name: str = "fake-seg") -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    # ground truth = the dominant channel of a noisy copy: the model is right more often where it is confident
    masks = (images + rng.normal(0, 40, images.shape)).argmax(-1).astype(np.uint8)
    masks[:, 0, :] = 255
    return ArrayDataset(images, masks, ("r", "g", "b"), task="segmentation", name=name)


def cls_dataset(n: int = 40, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    labels = images.reshape(n, -1, 3).mean(1).argmax(-1)
    return ArrayDataset(images, labels, ("r", "g", "b"), name="fake-cls")


def reference_predictions(model: nn.Module, dataset: ArrayDataset) -> tuple[np.ndarray, np.ndarray]:
    """Argmax and max-softmax of the model on the dataset's images with the default [0, 1] scaling."""
    x = torch.from_numpy(dataset.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        p = model(x).logits.double().softmax(1)
    conf, pred = p.max(1)
    return pred.numpy(), conf.numpy()
