"""A LeNet-size CNN for 32x32 digits (MNIST / SVHN / USPS-style embedded datasets).

Small enough to train on a laptop CPU in seconds; the layout follows the LeNet variants of the early DA papers
(two 5x5 conv/pool stages, one hidden fully-connected layer) with BatchNorm. The single-source digits recipes train
:class:`~domadapt.models.LeNet` instead: trained on source batches alone, DigitsNet normalises target images with
source statistics and its source-only baseline is weak (README, "Why LeNet and not DigitsNet"). The CDSSL digits
recipe and the static twin of DRT's :class:`~domadapt.models.DynamicDigitsNet` use it.
"""

from __future__ import annotations

import torch
from torch import nn

from domadapt.models.groups import backbone_head_groups
from domadapt.models.weights import load_weights
from domadapt.structures import NetOutput, Task


class DigitsNet(nn.Module):
    """Two conv stages and a hidden layer (the features), then a linear classifier.

    ``conv5x5(C->32) -> maxpool2 -> BN -> ReLU -> conv5x5(32->64) -> maxpool2 -> BN -> ReLU ->
    Linear(64*s*s -> D) -> ReLU`` gives the features; ``Dropout -> Linear(D -> K)`` the logits.
    Convolutions are unpadded, so ``s = ((input_size - 4) // 2 - 4) // 2`` (5 for 32x32).

    Args:
        num_classes: output classes ``K``.
        in_channels: image channels ``C`` (3 for RGB; grey digits are usually repeated to 3).
        num_features: width ``D`` of the hidden layer.
        dropout: dropout probability applied before the classifier only.
        input_size: side of the square input.
        weights: ``None`` or a local file holding this network (there are no ImageNet weights).

    Shape:
        - Input: ``(N, C, input_size, input_size)``.
        - Output: ``NetOutput(logits (N, K), features (N, D))``.
    """

    task: Task = "classification"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        num_features: int = 128,
        dropout: float = 0.5,
        input_size: int = 32,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size={input_size}: DigitsNet needs inputs of at least 16x16")
        self.input_size = input_size
        # Pool straight after each conv so BN and ReLU run on 4x fewer pixels: this keeps a CPU
        # training step on 64+64 images well under 50 ms.
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=5),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=5),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, num_features), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        self.num_classes = num_classes
        load_weights(self, weights, kind="DigitsNet", ignore_prefixes=(), head_prefixes=("head.",))

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Classify ``x``; see the class docstring for shapes."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"DigitsNet: expected {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}"
            )
        # oneDNN's CPU convolution and max-pool kernels are markedly faster in NHWC; the result
        # is the same tensor (only the memory layout differs) and Flatten keeps NCHW order.
        x = x.contiguous(memory_format=torch.channels_last)
        features = self.fc(self.conv(x))  # (N, D)
        logits = self.head(self.dropout(features))  # (N, K)
        return NetOutput(logits, features)

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Feature extractor (convs + hidden layer) at 1x, classifier at ``lr_mult_head`` x."""
        return backbone_head_groups([self.conv, self.fc], [self.head], lr_mult_head)
