"""LeNet as the digit experiments of the domain-adaptation literature use it (Ganin & Lempitsky, ICML 2015).

Ganin & Lempitsky's MNIST -> MNIST-M network ("Unsupervised Domain Adaptation by Backpropagation", §4, Fig. 2 of the
supplementary material; the same layer stack in DANN's JMLR version): two 5x5 convolution / 2x2 max-pool stages with
32 and 48 channels, then two fully connected layers of 100 units and the classifier; ReLU everywhere, no batch
normalisation, no dropout. It is the network of the single-source digits recipes and an honest baseline (a
source-only LeNet reaches about 53 % on digits-photo, where :class:`~domadapt.models.DigitsNet` stays near 35 %).
"""

from __future__ import annotations

import torch
from torch import nn

from domadapt.models.groups import backbone_head_groups
from domadapt.models.weights import load_weights
from domadapt.structures import NetOutput, Task


class LeNet(nn.Module):
    """``conv5x5(C->32) -> ReLU -> maxpool2 -> conv5x5(32->48) -> ReLU -> maxpool2 -> Linear(48 s² -> 100) -> ReLU ->
    Linear(100 -> D) -> ReLU`` gives the features; ``Linear(D -> K)`` the logits. Unpadded convolutions:
    ``s = ((input_size - 4) // 2 - 4) // 2`` (5 for 32x32).

    Args:
        num_classes: output classes ``K``.
        in_channels: image channels ``C``.
        num_features: width ``D`` of the second hidden layer (100 in the paper).
        input_size: side of the square input.
        bottleneck: width ``B`` of an extra ``Linear -> BatchNorm1d -> ReLU`` layer after the hidden layers (the
            bottleneck Transfer-Learning-Library's ``ImageClassifier`` puts in front of the classifier); the features
            are then ``(N, B)``. ``0`` (default): none, the paper's network.
        weights: ``None`` or a local file holding this network.

    Shape:
        - Input: ``(N, C, input_size, input_size)``.
        - Output: ``NetOutput(logits (N, K), features (N, D))``.
    """

    task: Task = "classification"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, num_features: int = 100, input_size: int = 32,
                 bottleneck: int = 0, weights: str | None = None) -> None:
        super().__init__()
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size={input_size}: LeNet needs inputs of at least 16x16")
        self.input_size = input_size
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(48 * side * side, 100), nn.ReLU(inplace=True),
                                nn.Linear(100, num_features), nn.ReLU(inplace=True))
        if bottleneck:
            self.fc.extend([nn.Linear(num_features, bottleneck), nn.BatchNorm1d(bottleneck), nn.ReLU(inplace=True)])
            num_features = bottleneck
        self.head = nn.Linear(num_features, num_classes)
        self.num_features, self.num_classes = num_features, num_classes
        load_weights(self, weights, kind="LeNet", ignore_prefixes=(), head_prefixes=("head.",))

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Classify ``x``; see the class docstring for shapes."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"LeNet: expected {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}")
        features = self.fc(self.conv(x.contiguous(memory_format=torch.channels_last)))  # (N, D)
        return NetOutput(self.head(features), features)

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Convolutions and hidden layers at 1x, classifier at ``lr_mult_head`` x."""
        return backbone_head_groups([self.conv, self.fc], [self.head], lr_mult_head)
