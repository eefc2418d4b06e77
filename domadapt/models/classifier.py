"""ResNet image classifier: torchvision backbone -> pool -> optional bottleneck -> linear head.

The layout of the classification baselines (DANN, CDAN, MCD, ...): a pretrained ResNet without
its ``fc``, global average pooling, an optional bottleneck ``Linear -> BatchNorm1d -> ReLU`` whose
output is the representation the alignment losses see, then a linear classifier.
"""

from __future__ import annotations

from typing import Literal

import torch
import torchvision
from torch import nn

from domadapt.models.grad_checkpoint import resnet_features
from domadapt.models.groups import backbone_head_groups
from domadapt.models.weights import load_weights
from domadapt.structures import NetOutput, Task

ResNetArch = Literal["resnet18", "resnet50", "resnet101"]


class ResNetClassifier(nn.Module):
    """ResNet classifier returning logits and the bottleneck features.

    Args:
        arch: torchvision ResNet name.
        num_classes: output classes ``K`` (345 for DomainNet).
        bottleneck_dim: width ``D`` of the bottleneck; ``None`` feeds the pooled backbone output
            (512 for ResNet-18, 2048 otherwise) straight to the head.
        weights: ``None``, ``"imagenet"`` (torchvision ``IMAGENET1K_V1`` backbone) or a local file
            holding either this whole network or a bare torchvision ResNet
            (see :func:`~domadapt.models.weights.load_weights`).
        dropout: dropout probability applied to the features before the head only.
        gradient_checkpointing: recompute each residual block's activations in backward instead of
            keeping them (:mod:`domadapt.models.grad_checkpoint`; same gradients, less memory).

    Shape:
        - Input: ``(N, 3, H, W)``.
        - Output: ``NetOutput(logits (N, K), features (N, D))``.
    """

    task: Task = "classification"

    def __init__(
        self,
        arch: ResNetArch = "resnet50",
        num_classes: int = 345,
        bottleneck_dim: int | None = 256,
        weights: str | None = None,
        dropout: float = 0.0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.gradient_checkpointing = gradient_checkpointing
        if arch not in ("resnet18", "resnet50", "resnet101"):
            raise ValueError(f"arch={arch!r}: expected one of 'resnet18', 'resnet50', 'resnet101'")
        backbone = getattr(torchvision.models, arch)(weights=None)
        pooled_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()  # the backbone now ends at the flattened global average pool
        self.backbone = backbone
        if bottleneck_dim is None:
            self.bottleneck = nn.Identity()
            self.num_features = pooled_dim
        else:
            self.bottleneck = nn.Sequential(
                nn.Linear(pooled_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU(inplace=True)
            )
            self.num_features = bottleneck_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes
        load_weights(self, weights, kind=arch, backbone_prefix="backbone.", head_prefixes=("head.",))

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Classify ``x``; see the class docstring for shapes."""
        pooled = resnet_features(self.backbone, x, self.gradient_checkpointing)  # (N, 2048) or (N, 512)
        features = self.bottleneck(pooled)  # (N, D)
        logits = self.head(self.dropout(features))  # (N, K)
        return NetOutput(logits, features)

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Backbone at 1x, bottleneck and head at ``lr_mult_head`` x."""
        return backbone_head_groups([self.backbone], [self.bottleneck, self.head], lr_mult_head)
