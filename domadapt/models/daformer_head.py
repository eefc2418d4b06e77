"""DAFormer's context-aware fusion decode head ("daformer_sepaspp"), on the four stages of a Mix Transformer.

Hoyer et al., "DAFormer: Improving Network Architectures and Training Strategies for Domain-Adaptive Semantic
Segmentation", CVPR 2022, §3.2 and Fig. 3; the released network is ``DAFormerHead`` with the separable-ASPP fusion
(DAFormer@e6f6e04 configs/_base_/models/daformer_sepaspp_mitb5.py:10-21 over daformer_conv1_mitb5.py:16-34).
With stages ``x_1 .. x_4`` (strides 4, 8, 16, 32), ``E`` = ``embed_dims``, ``C`` = ``channels``::

    e_i = up(W_i x_i + b_i)                      # linear over channels C_i -> E, bilinear to x_1's size
    z   = cat(e_1, e_2, e_3, e_4)                # (N, 4E, H/4, W/4), stage 1 first
    a_d = CBR_1x1(z) if d == 1 else CBR_1x1(CBR_dw3x3,d(z))   for d in dilations (1, 6, 12, 18)
    f   = CBR_3x3(cat(a_d))                      # the fused features, (N, C, H/4, W/4)
    y   = conv_1x1(dropout2d(f))                 # logits at 1/4 resolution

``CBR`` is mmcv's ``ConvModule`` with ``norm_cfg=BN, act_cfg=ReLU``: convolution without bias, BatchNorm, ReLU.
``CBR_dw3x3,d`` is the depthwise half of mmcv's ``DepthwiseSeparableConvModule`` (a 3x3 convolution with ``groups``
= input channels, dilation and padding ``d``, its own BN + ReLU), the 1x1 after it the pointwise half. No image-pool
branch (``pool=False``) and no context layer.

Written from the released code, not copied; each class names the file:line it follows. mmcv is not vendored in the
DAFormer repository, so two points rest on mmcv as DAFormer pins it (mmcv-full 1.3.7, README.md:150), stated as
assumptions:

* ``ConvModule`` with a norm layer builds its convolution with ``bias=False`` (``bias="auto"``), applies
  conv -> norm -> act in that order (``order=("conv", "norm", "act")``), names the parts ``conv`` / ``bn`` /
  ``activate``, and initialises the convolution ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` and the
  BatchNorm to weight 1, bias 0 in its own ``__init__``; ``DepthwiseSeparableConvModule`` is two such modules,
  ``depthwise_conv`` and ``pointwise_conv``, both with the given norm and activation;
* the decode head's ``init_cfg`` (decode_head.py:68-69, ``Normal std 0.01`` on ``conv_seg``) draws the classifier's
  weight from N(0, 0.01) and sets its bias to 0; the embedding ``nn.Linear`` keeps PyTorch's initialisation.

Module names follow the released state dict below ``decode_head.`` (``embed_layers.<i>.proj``,
``fuse_layer.aspp_modules.<j>``, ``fuse_layer.bottleneck``, ``conv_seg``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Module):
    """mmcv ``ConvModule(norm_cfg=BN, act_cfg=ReLU)``: ``relu(bn(conv(x)))``, the convolution without bias.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        padding: zero padding on each side.
        dilation: dilation of the kernel.
        groups: convolution groups (``in_channels`` for a depthwise convolution).

    Shape:
        ``(N, in_channels, h, w) -> (N, out_channels, h', w')`` (``h' = h`` with "same" padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, dilation: int = 1,
                 groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")  # mmcv ConvModule.init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparableConvBNReLU(nn.Module):
    """mmcv ``DepthwiseSeparableConvModule`` with a dilated 3x3 kernel: depthwise 3x3 CBR, then pointwise 1x1 CBR.

    DAFormer@e6f6e04 mmseg/models/decode_heads/sep_aspp_head.py:18-27 (the ASPP branches with dilation > 1).

    Shape:
        ``(N, in_channels, h, w) -> (N, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNReLU(in_channels, in_channels, 3, padding=dilation, dilation=dilation,
                                         groups=in_channels)
        self.pointwise_conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class MLPEmbedding(nn.Module):
    """A linear map over the channels of every pixel (the released ``MLP`` with ``act_cfg=None, norm_cfg=None``).

    DAFormer@e6f6e04 mmseg/models/decode_heads/segformer_head.py:19-29 (``flatten(2).transpose(1, 2)`` then
    ``nn.Linear``) and daformer_head.py:168-171 (tokens back to a map): ``e = W x + b`` per pixel.

    Shape:
        ``(N, C, h, w) -> (N, E, h, w)``.
    """

    def __init__(self, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tokens = self.proj(x.flatten(2).transpose(1, 2))  # (N, h*w, E)
        return tokens.transpose(1, 2).reshape(n, -1, h, w)


class SeparableASPPFusion(nn.Module):
    """DAFormer's fusion layer: parallel ASPP branches over the stacked embeddings, concatenated, then a 3x3 CBR.

    ``ASPPWrapper`` with ``sep=True, pool=False`` and no context layer (DAFormer@e6f6e04
    mmseg/models/decode_heads/daformer_head.py:19-83, built at :103-105): branch ``d`` is a 1x1 CBR for ``d == 1``
    (aspp_head.py:33-43, padding 0) and a :class:`SeparableConvBNReLU` with dilation ``d`` otherwise
    (sep_aspp_head.py:18-27); the bottleneck is a 3x3 CBR, padding 1, from ``len(dilations) * channels``
    (daformer_head.py:59-65).

    Shape:
        ``(N, in_channels, h, w) -> (N, channels, h, w)``.
    """

    def __init__(self, in_channels: int, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.aspp_modules = nn.ModuleList(
            ConvBNReLU(in_channels, channels, 1) if d == 1 else SeparableConvBNReLU(in_channels, channels, d)
            for d in dilations
        )
        self.bottleneck = ConvBNReLU(len(dilations) * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(torch.cat([branch(x) for branch in self.aspp_modules], dim=1))


class DAFormerHead(nn.Module):
    """The released ``DAFormerHead`` with the "sepaspp" fusion (formulas in the module docstring).

    DAFormer@e6f6e04 mmseg/models/decode_heads/daformer_head.py:123-184: one :class:`MLPEmbedding` per stage
    (:144-153; the last stage's ``embed_neck_cfg`` is the same ``mlp``), each embedding bilinearly resized
    (``align_corners=False``, :173-179) to the first stage's size, concatenated in stage order (:181), fused by
    :class:`SeparableASPPFusion` (:155-156, :181) and classified by ``cls_seg`` (:182): ``Dropout2d(dropout)`` then a
    1x1 convolution with bias (decode_head.py:87-91, :214-219).

    Args:
        in_channels: channels of the stages, highest resolution first (MiT-B5: ``(64, 128, 320, 512)``).
        num_classes: output classes ``K``.
        embed_dims: ``E``, the width of every stage's embedding (released 256).
        channels: ``C``, the width of the ASPP branches and of the fused features (released ``channels`` 256).
        dilations: ASPP dilation rates (released ``(1, 6, 12, 18)``); 1 gives a 1x1 branch.
        dropout: ``Dropout2d`` probability before the classifier (released ``dropout_ratio`` 0.1); 0 for none.

    Shape:
        - Input: a sequence of ``(N, in_channels[i], h_i, w_i)``, the first the largest (``H/4`` for MiT).
        - Output: ``(logits (N, K, h_0, w_0), features (N, C, h_0, w_0))``; the features are the fused map before
          dropout and classifier.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, embed_dims: int = 256, channels: int = 256,
                 dilations: Sequence[int] = (1, 6, 12, 18), dropout: float = 0.1) -> None:
        super().__init__()
        in_channels, dilations = [int(c) for c in in_channels], [int(d) for d in dilations]
        if not in_channels or min(in_channels) < 1:
            raise ValueError(f"DAFormerHead.in_channels: expected one positive width per stage, got {in_channels}")
        if not dilations or min(dilations) < 1:
            raise ValueError(f"DAFormerHead.dilations: expected one or more rates >= 1, got {dilations}")
        for name, value in (("num_classes", num_classes), ("embed_dims", embed_dims), ("channels", channels)):
            if int(value) < 1:
                raise ValueError(f"DAFormerHead.{name}: expected an integer >= 1, got {value}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"DAFormerHead.dropout: expected a probability in [0, 1), got {dropout}")
        self.in_channels, self.dilations = tuple(in_channels), tuple(dilations)
        self.embed_layers = nn.ModuleDict({str(i): MLPEmbedding(c, embed_dims) for i, c in enumerate(in_channels)})
        self.fuse_layer = SeparableASPPFusion(len(in_channels) * embed_dims, channels, dilations)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv_seg.weight, 0.0, 0.01)  # decode_head.py:68-69 (init_cfg Normal, std 0.01)
        nn.init.zeros_(self.conv_seg.bias)

    def forward(self, stages: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and fused features at the first stage's resolution; see the class docstring for shapes."""
        if len(stages) != len(self.embed_layers):
            raise ValueError(f"DAFormerHead: expected {len(self.embed_layers)} stages, got {len(stages)}")
        size = stages[0].shape[-2:]
        embedded = []
        for i, x in enumerate(stages):
            e = self.embed_layers[str(i)](x)  # (N, E, h_i, w_i)
            if e.shape[-2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
            embedded.append(e)
        features = self.fuse_layer(torch.cat(embedded, dim=1))  # (N, C, h_0, w_0)
        return self.conv_seg(self.dropout(features)), features
