"""Dynamic convolution decomposition (DCD) as the authors released it.

Li et al., "Revisiting Dynamic Convolution via Matrix Decomposition", ICLR 2021 (https://arxiv.org/abs/2103.08756),
write a dynamic kernel as ``W(x) = Lambda(x) W0 + P Phi(x) Q^T`` (their Eq. 6). Their released layer
(``liyunsheng13/dcd`` @6a5e27f, ``models/imagenet/resnet_dcd.py:161-197``, ``conv_dy``) computes more than that::

    y     = SE(FC(pool(x)))                                  FC: C·a² -> S (no bias), SE: y * hsigmoid(W_se y)
    Lambda = hsigmoid(W_scale y)   (B, C_out)                hsigmoid(z) = relu6(z + 3) / 3
    Phi    = W_phi y               (B, L, L)
    z      = BN1(Q x)              Q: 1x1 conv C_in -> L with the layer's stride
    out    = Lambda * conv(x; W0) + P (BN2(Phi z) + z)       P: 1x1 conv L -> C_out

— an identity path beside ``Phi``, two batch normalisations in the latent space and SE-style gating of the
squeezed context, with ``L = floor(sqrt(C_in·a²))`` and ``S = max(C_in·a², L²) // 16``. Bottleneck blocks make
all three convolutions dynamic, each reading its own input (pooled to 1x1, ``a = 1``); basic blocks pool the
context to 2x2 (``a = 2``, ``conv_basic_dy``, ``resnet_dcd.py:78-124``, which also floors ``S`` at 4).

``Q x`` reads the input pixels a ``k x k`` kernel's centre tap meets (the released ``q`` is a 1x1 convolution
with the same stride and no padding), so the layer keeps :class:`torch.nn.Conv2d`'s geometry.

With ``zero_init=True`` (the default here, for fine-tuning from static weights) ``W_scale`` and ``P`` start at
zero, so ``Lambda = 1`` and the layer equals the static convolution; ``zero_init=False`` initialises as the
released network does (``resnet_dcd.py:265-271``: convolutions ``N(0, 2 / (k² C_out))``, linear layers PyTorch's
default). The released classifier (``DYCls``) is not part of this layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from domadapt.layers.dynamic_conv import centre_taps, non_static_parameters


def hsigmoid(x: Tensor) -> Tensor:
    """``relu6(x + 3) / 3``: 1 at 0, in ``[0, 2]`` (the released ``Hsigmoid``)."""
    return F.relu6(x + 3.0) / 3.0


class DCDConv2d(nn.Module):
    """Static ``k x k`` convolution scaled per channel plus a latent dynamic 1x1 path (released DCD, see module).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: odd side(s) of the static kernel.
        stride: as :class:`torch.nn.Conv2d` (also the stride of ``Q``).
        padding: as :class:`torch.nn.Conv2d`.
        dilation: as :class:`torch.nn.Conv2d`.
        bias: a static bias, added last (the released layer has none).
        reduction: ``S = max(C_c·a², L²) // reduction`` (16 in the released code; at least 4 when ``a > 1``, 1 else).
        context_pool: ``a``, side of the adaptive average pooling of the context (1: bottleneck, 2: basic block).
        context_channels: channels ``C_c`` of the context (default ``C_in``: the layer's own input).
        latent_dim: ``L`` (default ``floor(sqrt(C_in·a²))``).
        zero_init: start ``W_scale`` and ``P`` at zero (the layer equals the static convolution).

    Shape:
        - Input: ``x (B, C_in, H, W)``; optional ``context (B, C_c, H_c, W_c)`` (default ``x``).
        - Output: ``(B, C_out, H_out, W_out)`` as :class:`torch.nn.Conv2d` with the same geometry.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = False,
        reduction: int = 16,
        context_pool: int = 1,
        context_channels: int | None = None,
        latent_dim: int | None = None,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        if any(k % 2 == 0 for k in conv.kernel_size):
            raise ValueError(f"DCDConv2d.kernel_size: expected odd sides (Q reads the centre tap), got {conv.kernel_size}")
        if reduction < 1 or context_pool < 1:
            raise ValueError(f"DCDConv2d: expected reduction >= 1 and context_pool >= 1, got {reduction}, {context_pool}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = (conv.kernel_size, conv.stride, conv.padding,
                                                                      conv.dilation)
        self.weight, self.bias = conv.weight, conv.bias  # nn.Conv2d's names: static checkpoints load into W0
        pooled = (in_channels if context_channels is None else context_channels) * context_pool ** 2
        self.context_pool = context_pool
        self.latent_dim = latent_dim or max(int(math.sqrt(in_channels * context_pool ** 2)), 1)
        hidden = max(pooled, self.latent_dim ** 2) // reduction
        hidden = max(hidden, 4 if context_pool > 1 else 1)  # conv_basic_dy floors at 4; conv_dy needs C_in >= 16
        self.squeeze = nn.Linear(pooled, hidden, bias=False)  # fc[0]
        self.gate = nn.Linear(hidden, hidden, bias=False)  # fc[1] (SEModule_small)
        self.to_fusion = nn.Linear(hidden, self.latent_dim ** 2, bias=False)  # fc_phi
        self.to_scale = nn.Linear(hidden, out_channels, bias=False)  # fc_scale
        self.proj_in = nn.Parameter(torch.empty(self.latent_dim, in_channels))  # q (1x1 conv weight)
        self.proj_out = nn.Parameter(torch.empty(out_channels, self.latent_dim))  # p
        self.norm_in = nn.BatchNorm2d(self.latent_dim)  # bn1
        self.norm_fusion = nn.BatchNorm2d(self.latent_dim)  # bn2 (BatchNorm1d over (B, L, HW): the same statistics)
        with torch.no_grad():
            self.proj_in.normal_(0.0, math.sqrt(2.0 / self.latent_dim))
            self.proj_out.normal_(0.0, math.sqrt(2.0 / out_channels))
            if zero_init:
                self.proj_out.zero_()
                self.to_scale.weight.zero_()

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters a static convolution does not have: ``lr_mult`` 10 in DRT-style fine-tuning."""
        return non_static_parameters(self)

    def set_progress(self, p: float) -> None:
        """No schedule (DCD has no attention temperature); here for the dynamic-layer interface."""

    def scale_and_fusion(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """``Lambda`` ``(B, C_out)`` and ``Phi`` ``(B, L, L)`` from the context."""
        y = self.squeeze(F.adaptive_avg_pool2d(context, self.context_pool).flatten(1))  # (B, S)
        y = y * hsigmoid(self.gate(y))
        return hsigmoid(self.to_scale(y)), self.to_fusion(y).view(-1, self.latent_dim, self.latent_dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Apply the layer; see the class docstring for shapes."""
        scale, fusion = self.scale_and_fusion(x if context is None else context)
        out = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation) * scale[:, :, None, None]
        taps = centre_taps(x, self.kernel_size, self.stride, self.padding, self.dilation)  # (B, C_in, H', W')
        z = self.norm_in(F.conv2d(taps, self.proj_in[:, :, None, None]))  # (B, L, H', W')
        b, n, h, w = z.shape
        mixed = torch.bmm(fusion, z.reshape(b, n, h * w)).view(b, n, h, w)  # Phi z
        out = out + F.conv2d(self.norm_fusion(mixed) + z, self.proj_out[:, :, None, None])
        return out if self.bias is None else out + self.bias[:, None, None]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, latent_dim={self.latent_dim}, "
                f"context_pool={self.context_pool}")


__all__ = ["DCDConv2d", "hsigmoid"]
