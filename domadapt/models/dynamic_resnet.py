"""Dynamic ResNets for DRT: torchvision ResNets whose convolutions are residual dynamic convolutions.

DRT (Li et al., CVPR 2021, https://arxiv.org/abs/2103.10583; METHODS.md §3.2) replaces the 3x3 conv of
every bottleneck (``conv2``) by ``W0 + sum_k pi_k(x_in) Phi_k`` where the attention reads the *block
input* ``x_in``. Here the torchvision network is built first and its blocks are then wrapped
(:class:`DynamicBlock`) keeping every sub-module name, so the state-dict keys are torchvision's: a
static ImageNet checkpoint loads into ``W0`` (``...conv2.weight``) as it is, the residual kernels start
at zero and the fresh network computes exactly what the static one does. Basic blocks (ResNet-18)
get both of their 3x3 convolutions made dynamic. ``mode="dcd"`` builds the released DCD network instead
(``resnet_dcd.py``): every convolution of every block (all three of a bottleneck) is a
:class:`~domadapt.layers.dcd_conv.DCDConv2d` reading its own input.

:class:`DynamicDigitsNet` is the same idea on the LeNet-size digits network for CPU experiments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from domadapt.models.grad_checkpoint import resnet_features
from domadapt.layers.dcd_conv import DCDConv2d
from domadapt.layers.dynamic_conv import DynamicConv2d, DynamicMode, dynamic_parameters, is_dynamic_layer, set_progress
from domadapt.models.classifier import ResNetArch
from domadapt.models.digits import DigitsNet
from domadapt.models.drt_checkpoint import from_drt_layout
from domadapt.models.groups import trainable
from domadapt.models.weights import load_weights, read_state_dict
from domadapt.structures import NetOutput

_DYNAMIC_KEYS = (".residual", ".squeeze.", ".to_attention.", ".to_scale.", ".to_fusion.", ".proj_in", ".proj_out")


def dynamic_from_conv(conv: nn.Conv2d, context_channels: int | None = None, mode: DynamicMode = "drt",
                      **kwargs) -> DynamicConv2d | DCDConv2d:
    """A dynamic convolution with the geometry of ``conv`` whose ``W0`` (and bias) are copied from it.

    Args:
        conv: the static convolution.
        context_channels: channels of the context (default: the layer's input).
        mode: ``"drt"`` (:class:`DynamicConv2d`; ``kwargs``: ``num_kernels``, ``reduction``, ``temperature``,
            ``temperature_anneal``) or ``"dcd"`` (:class:`DCDConv2d`; ``kwargs``: ``reduction``, ``context_pool``).
    """
    geometry = dict(kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
    if mode == "dcd":
        if conv.groups != 1:
            raise ValueError(f"mode='dcd': grouped convolutions (groups={conv.groups}) are not supported")
        dyn = DCDConv2d(conv.in_channels, conv.out_channels, **geometry, bias=conv.bias is not None,  # type: ignore[arg-type]
                        context_channels=context_channels, **kwargs)
    elif mode == "drt":
        dyn = DynamicConv2d(conv.in_channels, conv.out_channels, **geometry, groups=conv.groups,  # type: ignore[arg-type]
                            bias=conv.bias is not None, context_channels=context_channels, **kwargs)
    else:
        raise ValueError(f"mode: expected 'drt' or 'dcd', got {mode!r}")
    with torch.no_grad():
        dyn.weight.copy_(conv.weight)
        if conv.bias is not None:
            dyn.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return dyn


class DynamicBlock(nn.Module):
    """A torchvision ``BasicBlock`` / ``Bottleneck`` with dynamic convolutions.

    ``mode="drt"``: the 3x3 convolutions, their attention reading the block input. ``mode="dcd"`` (released
    ``resnet_dcd.py:126-239``): every convolution, each reading its own input (basic blocks pool it to 2x2).
    The block's sub-modules are reused under their names (``conv1``, ``bn1``, ..., ``downsample``).

    Args:
        block: the torchvision block to convert.
        mode: ``"drt"`` or ``"dcd"``.
        **kwargs: options of the dynamic layer (see :func:`dynamic_from_conv`).

    Shape:
        ``(B, C_in, H, W)`` -> the block's output shape.
    """

    def __init__(self, block: nn.Module, mode: DynamicMode = "drt", **kwargs) -> None:
        super().__init__()
        self.bottleneck = hasattr(block, "conv3")
        self.block_context = mode == "drt"  # DRT's attention reads the block input, DCD's its own input
        ctx = block.conv1.in_channels if self.block_context else None
        if mode == "dcd":
            kwargs = dict(kwargs, context_pool=1 if self.bottleneck else 2)
        dynamic = {"conv2"} | ({"conv1"} if not self.bottleneck or mode == "dcd" else set())
        dynamic |= {"conv3"} if self.bottleneck and mode == "dcd" else set()
        for name in ("conv1", "conv2", "conv3") if self.bottleneck else ("conv1", "conv2"):
            conv = getattr(block, name)
            setattr(self, name, dynamic_from_conv(conv, ctx, mode, **kwargs) if name in dynamic else conv)
        self.bn1, self.bn2 = block.bn1, block.bn2
        if self.bottleneck:
            self.bn3 = block.bn3
        self.relu, self.downsample = block.relu, block.downsample

    def _conv(self, conv: nn.Module, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return conv(h, context=x) if self.block_context and is_dynamic_layer(conv) else conv(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self._conv(self.conv1, x, x)))
        h = self.bn2(self._conv(self.conv2, h, x))
        if self.bottleneck:
            h = self.bn3(self._conv(self.conv3, self.relu(h), x))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(h + identity)


class DynamicResNet(nn.Module):
    """ResNet classifier with dynamic residual convolutions (DRT backbone); ``dynamic=False`` = static twin.

    Args:
        arch: torchvision ResNet name.
        num_classes: output classes ``K`` (345 for DomainNet).
        bottleneck_dim: width ``D`` of a ``Linear -> BN -> ReLU`` bottleneck; ``None`` (DRT) gives the
            pooled backbone output (512 for ResNet-18, 2048 otherwise) as the features.
        weights: ``None``, ``"imagenet"`` (torchvision ``IMAGENET1K_V1``, into ``W0``) or a local file
            holding a torchvision ResNet, this whole network, or a dynamic checkpoint.
        dropout: dropout before the head.
        gradient_checkpointing: recompute each residual block's activations in backward instead of
            keeping them (:mod:`domadapt.models.grad_checkpoint`; same gradients, less memory).
        dynamic: make the chosen stages dynamic; ``False`` builds the same network with static convs.
        dynamic_stages: which of ``layer1 .. layer4`` get dynamic blocks.
        num_kernels: ``K`` residual kernels per dynamic conv.
        reduction: attention MLP reduction (16 in DRT).
        mode: ``"drt"`` (:class:`~domadapt.layers.dynamic_conv.DynamicConv2d` on the 3x3 convolutions) or
            ``"dcd"`` (the released DCD layer, :class:`~domadapt.layers.dcd_conv.DCDConv2d`, on every block
            convolution; ``num_kernels`` and the temperature do not apply).
        temperature: initial attention temperature; ``temperature_anneal`` the fraction of training
            over which it reaches 1 (the method calls :meth:`set_progress`).
        temperature_anneal: see ``temperature``.

    Shape:
        - Input: ``(N, 3, H, W)``.
        - Output: ``NetOutput(logits (N, K), features (N, D))``.
    """

    task = "classification"

    def __init__(
        self,
        arch: ResNetArch = "resnet101",
        num_classes: int = 345,
        bottleneck_dim: int | None = None,
        weights: str | None = None,
        dropout: float = 0.0,
        dynamic: bool = True,
        dynamic_stages: tuple[int, ...] = (1, 2, 3, 4),
        num_kernels: int = 4,
        reduction: int = 16,
        mode: DynamicMode = "drt",
        temperature: float = 1.0,
        temperature_anneal: float = 0.0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.gradient_checkpointing = gradient_checkpointing
        if arch not in ("resnet18", "resnet50", "resnet101"):
            raise ValueError(f"arch={arch!r}: expected one of 'resnet18', 'resnet50', 'resnet101'")
        if any(s not in (1, 2, 3, 4) for s in dynamic_stages):
            raise ValueError(f"DynamicResNet.dynamic_stages: expected stages among 1..4, got {tuple(dynamic_stages)}")
        backbone = getattr(torchvision.models, arch)(weights=None)
        if dynamic:
            opts = _layer_options(mode, num_kernels, reduction, temperature, temperature_anneal)
            for s in sorted(set(dynamic_stages)):
                stage = getattr(backbone, f"layer{s}")
                for i in range(len(stage)):
                    stage[i] = DynamicBlock(stage[i], mode, **opts)
        pooled_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        if bottleneck_dim is None:
            self.bottleneck, self.num_features = nn.Identity(), pooled_dim
        else:
            self.bottleneck = nn.Sequential(nn.Linear(pooled_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim),
                                            nn.ReLU(inplace=True))
            self.num_features = bottleneck_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes
        load_weights(self, weights, kind=arch, backbone_prefix="backbone.", head_prefixes=("head.",),
                     convert=from_drt_layout)  # the authors' dynamic ResNet-101 (resnet_dra.py keys) loads too
        # DRT gives parameters found in the checkpoint 1x and new ones 10x (resnet_dra.py:104-117, 285-310): a dynamic
        # checkpoint's attention and residuals are pretrained, a static one's are not.
        self.pretrained_dynamic = weights not in (None, "imagenet") and _has_dynamic_keys(weights)

    def forward(self, x: torch.Tensor) -> NetOutput:
        """Classify ``x``; see the class docstring for shapes."""
        pooled = resnet_features(self.backbone, x, self.gradient_checkpointing)
        features = self.bottleneck(pooled)  # (N, D)
        return NetOutput(self.head(self.dropout(features)), features)

    def set_progress(self, p: float) -> None:
        """Update every dynamic convolution's temperature for training progress ``p``."""
        set_progress(self, p)

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Pretrained parameters at 1x; attention, residual kernels, bottleneck and head at ``lr_mult_head`` x."""
        new = [] if self.pretrained_dynamic else dynamic_parameters(self.backbone)
        return _split_groups([self.backbone], new, [self.bottleneck, self.head], lr_mult_head)


class DynamicDigitsNet(DigitsNet):
    """:class:`~domadapt.models.DigitsNet` whose convolutions are residual dynamic convolutions.

    Each chosen conv reads its own input as the attention context. The first conv sees 3 channels,
    so its attention MLP uses no reduction (``3 // reduction`` would be 0).

    Args:
        num_classes, in_channels, num_features, dropout, input_size: as :class:`DigitsNet`.
        weights: ``None`` or a local file (a static ``DigitsNet`` file loads into ``W0``).
        dynamic: ``False`` gives exactly ``DigitsNet`` (the static ablation of the same class).
        dynamic_convs: which convolutions (1 = first, 2 = second) are dynamic.
        num_kernels, reduction, mode, temperature, temperature_anneal: see :class:`DynamicResNet`.

    Shape:
        - Input: ``(N, C, input_size, input_size)``.
        - Output: ``NetOutput(logits (N, K), features (N, D))``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        num_features: int = 128,
        dropout: float = 0.5,
        input_size: int = 32,
        weights: str | None = None,
        dynamic: bool = True,
        dynamic_convs: tuple[int, ...] = (1, 2),
        num_kernels: int = 4,
        reduction: int = 16,
        mode: DynamicMode = "drt",
        temperature: float = 1.0,
        temperature_anneal: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, num_features, dropout, input_size, weights=None)
        if any(i not in (1, 2) for i in dynamic_convs):
            raise ValueError(f"DynamicDigitsNet.dynamic_convs: expected convs among 1, 2, got {tuple(dynamic_convs)}")
        if dynamic:
            for i in sorted(set(dynamic_convs)):
                pos = 0 if i == 1 else 4  # index of the conv in self.conv
                r = 1 if i == 1 and mode == "drt" else reduction
                opts = _layer_options(mode, num_kernels, r, temperature, temperature_anneal)
                self.conv[pos] = dynamic_from_conv(self.conv[pos], None, mode, **opts)
        load_weights(self, weights, kind="DynamicDigitsNet", ignore_prefixes=(), head_prefixes=("head.",))
        self.pretrained_dynamic = weights is not None and _has_dynamic_keys(weights)

    def set_progress(self, p: float) -> None:
        """Update every dynamic convolution's temperature for training progress ``p``."""
        set_progress(self, p)

    def param_groups(self, lr_mult_head: float = 10.0) -> list[dict]:
        """Convs and hidden layer at 1x; attention, residual kernels and classifier at ``lr_mult_head`` x."""
        new = [] if self.pretrained_dynamic else dynamic_parameters(self.conv)
        return _split_groups([self.conv, self.fc], new, [self.head], lr_mult_head)


def _layer_options(mode: DynamicMode, num_kernels: int, reduction: int, temperature: float,
                   temperature_anneal: float) -> dict:
    """Options of the dynamic layer of ``mode`` (see :func:`dynamic_from_conv`)."""
    if mode == "drt":
        return dict(num_kernels=num_kernels, reduction=reduction, temperature=temperature,
                    temperature_anneal=temperature_anneal)
    if mode == "dcd":
        if temperature != 1.0 or temperature_anneal:
            raise ValueError(f"mode='dcd' has no attention temperature; got temperature={temperature}, "
                             f"temperature_anneal={temperature_anneal}")
        return dict(reduction=reduction)
    raise ValueError(f"mode: expected 'drt' or 'dcd', got {mode!r}")


def _split_groups(backbone: Sequence[nn.Module], new: list[nn.Parameter], head: Sequence[nn.Module],
                  lr_mult_head: float) -> list[dict]:
    """``[backbone minus new (1x), new + head (lr_mult_head x)]``, trainable parameters each once."""
    taken = {id(p) for p in new}
    base = [p for p in trainable(backbone) if id(p) not in taken]
    taken |= {id(p) for p in base}
    extra = [p for p in new if p.requires_grad] + [p for p in trainable(head) if id(p) not in taken]
    return [{"params": base, "lr_mult": 1.0, "name": "backbone"},
            {"params": extra, "lr_mult": float(lr_mult_head), "name": "head"}]


def _has_dynamic_keys(path: str) -> bool:
    """Whether a weights file holds attention / residual tensors (a dynamic checkpoint, ours or the authors')."""
    return any(any(tag in k for tag in _DYNAMIC_KEYS) for k in from_drt_layout(read_state_dict(path)))


__all__ = ["DynamicBlock", "DynamicDigitsNet", "DynamicResNet", "dynamic_from_conv"]
