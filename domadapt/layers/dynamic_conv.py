"""Residual dynamic convolution (DRT): a static kernel plus an input-dependent residual.

DRT (Li et al., "Dynamic Transfer for Multi-Source Domain Adaptation", CVPR 2021,
https://arxiv.org/abs/2103.10583) makes a convolution sample-dependent by adding an attention-weighted
sum of ``K`` residual 1x1 kernels to a static ``k x k`` kernel ``W0``::

    W(x) = W0 + sum_k pi_k(x) Phi_k              (Phi_k at the kernel centre)
    pi(x) = softmax(FC2(ReLU(FC1(GAP(c)))) / T)  FC1: C_c -> C_c / r, FC2: C_c / r -> K, no biases

where ``c`` is the *context*: the block input in a ResNet block (DRT), the layer input otherwise. The
residual is a 1x1 kernel, so the layer never builds per-sample kernels: it runs the static convolution
once for the whole batch, aggregates ``M_b = sum_k pi_bk Phi_k`` and applies it once to the (shifted,
strided) input as a batched matrix product. This equals ``sum_k pi_bk conv1x1(x, Phi_k)`` exactly but costs
``C_out C_in HW`` per sample instead of ``K C_out C_in HW`` and stores no ``(B, K C_out, H, W)`` intermediate
(``benchmarks/dynamic_conv.py``, ResNet-50 on CPU: +5 % step time over the static network, against +28 % for
the stacked form). :meth:`DynamicConv2d.aggregated_weight` builds the per-sample kernels explicitly; it is the
slow reference the tests and the benchmark compare against. DCD, the latent-space variant, is
:class:`~domadapt.layers.dcd_conv.DCDConv2d`.

The residual parameters start at zero (``zero_init=True``), so a fresh layer equals the static
convolution and static pretrained weights load into ``weight`` unchanged (same key as ``nn.Conv2d``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DynamicMode = Literal["drt", "dcd"]
"""``"drt"``: :class:`DynamicConv2d` on each block's 3x3 convolution(s); ``"dcd"``: the released DCD layer
(:class:`~domadapt.layers.dcd_conv.DCDConv2d`) on every convolution of the block."""


def annealed_temperature(p: float, initial: float = 1.0, anneal_fraction: float = 0.0) -> float:
    """Softmax temperature at training progress ``p`` (a pure function of ``p``).

    ``T(p) = initial + (1 - initial) * min(p / anneal_fraction, 1)``: linear from ``initial`` to 1 over
    the first ``anneal_fraction`` of training (DY-Conv anneals 30 -> 1 over the first 10 of 300 epochs);
    ``anneal_fraction <= 0`` keeps ``initial`` throughout.

    Args:
        p: training progress, clipped to ``[0, 1]``.
        initial: temperature at ``p = 0``.
        anneal_fraction: fraction of training over which the temperature reaches 1.
    """
    if anneal_fraction <= 0:
        return float(initial)
    ramp = min(max(p, 0.0) / anneal_fraction, 1.0)
    return float(initial + (1.0 - initial) * ramp)


def _pair(v: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or any(not isinstance(i, int) for i in pair):
        raise ValueError(f"DynamicConv2d.{name}: expected an int or a pair of ints, got {v!r}")
    return pair  # type: ignore[return-value]


class DynamicConv2d(nn.Module):
    """Static ``k x k`` convolution plus an attention-weighted 1x1 residual (DRT).

    Args:
        in_channels: input channels ``C_in``.
        out_channels: output channels ``C_out``.
        kernel_size: odd side(s) of the static kernel (the residual sits at its centre tap).
        stride: as :class:`torch.nn.Conv2d`; the residual uses the same stride.
        padding: zero padding, as :class:`torch.nn.Conv2d`.
        dilation: as :class:`torch.nn.Conv2d`.
        groups: as :class:`torch.nn.Conv2d`; residual kernels are grouped alike.
        bias: a static bias (DRT uses none).
        num_kernels: ``K``, number of residual kernels.
        reduction: attention MLP reduction ``r``: hidden width ``C_c // r``.
        context_channels: channels ``C_c`` of the context the attention reads (default ``C_in``).
        temperature: softmax temperature at the start of training.
        temperature_anneal: fraction of training over which the temperature goes linearly to 1
            (0 = constant); applied by :meth:`set_progress`.
        zero_init: start the residual at zero, so that the layer equals the static convolution.

    Shape:
        - Input: ``x (B, C_in, H, W)``; optional ``context (B, C_c, H_c, W_c)`` (default ``x``).
        - Output: ``(B, C_out, H_out, W_out)`` with the sizes of ``nn.Conv2d`` with the same geometry.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        num_kernels: int = 4,
        reduction: int = 16,
        context_channels: int | None = None,
        temperature: float = 1.0,
        temperature_anneal: float = 0.0,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        ctx = in_channels if context_channels is None else context_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"DynamicConv2d.kernel_size: expected odd sides (the residual sits at the centre tap), "
                             f"got {self.kernel_size}")
        if num_kernels <= 0:
            raise ValueError(f"DynamicConv2d.num_kernels: expected K >= 1, got {num_kernels}")
        if not 1 <= reduction <= ctx:
            raise ValueError(f"DynamicConv2d.reduction: expected 1 <= reduction <= {ctx} (the context channels), "
                             f"got {reduction}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"DynamicConv2d.groups: {groups} does not divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if temperature <= 0:
            raise ValueError(f"DynamicConv2d.temperature: expected > 0, got {temperature}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.num_kernels = num_kernels
        self.initial_temperature, self.temperature_anneal = float(temperature), float(temperature_anneal)
        # Same names and shapes as nn.Conv2d, so static checkpoints load into W0 as they are.
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's default initialisation
        # Kept in checkpoints: evaluation after loading uses the temperature training ended with.
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        hidden = ctx // reduction
        self.squeeze = nn.Sequential(nn.Linear(ctx, hidden, bias=False), nn.ReLU(inplace=True))
        self.to_attention = nn.Linear(hidden, num_kernels, bias=False)
        self.residual = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels // groups))  # Phi_k
        self.reset_residual(zero=zero_init)

    # ------------------------------------------------------------------ parameters
    def reset_residual(self, zero: bool = True) -> None:
        """Zero the residual (the layer becomes the static conv), or give it a small random start."""
        with torch.no_grad():
            if zero:
                self.residual.zero_()
            else:
                self.residual.normal_(0.0, 0.05)

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters a static convolution does not have (attention and residual): ``lr_mult`` 10 in DRT."""
        return non_static_parameters(self)

    def set_progress(self, p: float) -> None:
        """Set the softmax temperature for training progress ``p`` (:func:`annealed_temperature`)."""
        self.temperature.fill_(annealed_temperature(p, self.initial_temperature, self.temperature_anneal))

    # ------------------------------------------------------------------ dynamic coefficients
    def attention(self, context: Tensor) -> Tensor:
        """DRT kernel attention ``pi = softmax(FC2(ReLU(FC1(GAP(context)))) / T)``.

        Shape:
            ``(B, C_c, H, W)`` -> ``(B, K)``, rows summing to 1.
        """
        logits = self.to_attention(self.squeeze(context.mean((2, 3))))  # (B, K)
        return torch.softmax(logits / self.temperature, dim=1)

    def aggregated_weight(self, context: Tensor) -> Tensor:
        """Explicit per-sample kernels ``W(x_b)`` (reference path; the forward never builds them).

        Shape:
            ``(B, C_c, H, W)`` -> ``(B, C_out, C_in / groups, kh, kw)``.
        """
        ch, cw = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        w = self.weight.expand(context.shape[0], *self.weight.shape).clone()
        w[:, :, :, ch, cw] += torch.einsum("bk,koi->boi", self.attention(context), self.residual)
        return w

    # ------------------------------------------------------------------ forward
    def _static(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, self.weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Apply ``W(x)``; see the class docstring for shapes."""
        ctx = x if context is None else context
        out = self._static(x, self.bias)  # (B, C_out, H', W'): one batched convolution
        taps = centre_taps(x, self.kernel_size, self.stride, self.padding, self.dilation)  # (B, C_in, H', W')
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        mix = torch.einsum("bk,koi->boi", self.attention(ctx), self.residual)  # (B, C_out, C_in/g)
        return pointwise(mix, taps, self.groups, nhwc, out=out)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, num_kernels={self.num_kernels}")


def centre_taps(x: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int]) -> Tensor:
    """The input pixels a ``k x k`` kernel's centre meets: ``conv1x1`` with the same stride on a shifted ``x``.

    The centre tap of output ``i`` reads ``x[i s - p + d (k - 1) / 2]``; padding (or cropping, when
    negative) both sides by ``p - d (k - 1) / 2`` and sub-sampling by ``s`` gives exactly ``H_out``.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H_out, W_out)``.
    """
    sh = padding[0] - dilation[0] * (kernel_size[0] // 2)
    sw = padding[1] - dilation[1] * (kernel_size[1] // 2)
    if sh > 0 or sw > 0:
        x = F.pad(x, (max(sw, 0), max(sw, 0), max(sh, 0), max(sh, 0)))
    if sh < 0 or sw < 0:  # crop with a view rather than a copy
        h, w = x.shape[-2:]
        x = x[:, :, max(-sh, 0) : h - max(-sh, 0), max(-sw, 0) : w - max(-sw, 0)]
    return x[:, :, :: stride[0], :: stride[1]]


def pointwise(mix: Tensor, x: Tensor, groups: int = 1, nhwc: bool = False, out: Tensor | None = None) -> Tensor:
    """A different 1x1 convolution per sample, as one batched matmul: ``out_b + mix_b x_b`` at every pixel.

    ``nhwc`` multiplies in channels-last order (no copy for channels-last inputs; the result is
    channels-last too), otherwise in NCHW order. ``out`` (optional) is added in the same kernel
    (``baddbmm``), which saves a pass over the output.

    Shape:
        mix ``(B, C_out, C_in / groups)``, x ``(B, C_in, H, W)``, out ``(B, C_out, H, W)`` -> ``(B, C_out, H, W)``.
    """
    b, c_in, h, w = x.shape
    c_out = mix.shape[1]
    if nhwc and groups == 1:
        flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c_in)  # (B, HW, C_in)
        if out is None:
            y = flat @ mix.transpose(1, 2)
        else:
            y = torch.baddbmm(out.permute(0, 2, 3, 1).reshape(b, h * w, c_out), flat, mix.transpose(1, 2))
        return y.view(b, h, w, c_out).permute(0, 3, 1, 2)  # (B, C_out, H, W), channels-last
    g = groups
    mix = mix.reshape(b * g, c_out // g, c_in // g)
    flat = x.reshape(b * g, c_in // g, h * w)
    y = mix @ flat if out is None else torch.baddbmm(out.reshape(b * g, c_out // g, h * w), mix, flat)
    return y.reshape(b, c_out, h, w)


def non_static_parameters(layer: nn.Module) -> list[nn.Parameter]:
    """Every parameter of a dynamic layer except its static ``weight`` and ``bias`` (what :class:`torch.nn.Conv2d`
    has, and static checkpoints fill)."""
    static = {id(layer.weight)} | ({id(layer.bias)} if layer.bias is not None else set())
    return [p for p in layer.parameters() if id(p) not in static]


def is_dynamic_layer(module: nn.Module) -> bool:
    """A dynamic convolution (:class:`DynamicConv2d`, :class:`~domadapt.layers.dcd_conv.DCDConv2d`): a layer with
    ``new_parameters()`` and ``set_progress(p)``."""
    return callable(getattr(module, "new_parameters", None)) and callable(getattr(module, "set_progress", None))


def set_progress(module: nn.Module, p: float) -> None:
    """Call ``set_progress(p)`` on every dynamic convolution inside ``module``."""
    for m in module.modules():
        if is_dynamic_layer(m):
            m.set_progress(p)


def dynamic_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters a static network lacks (attention, residuals, latent paths) of every dynamic convolution
    inside ``module``."""
    return [p for m in module.modules() if is_dynamic_layer(m) for p in m.new_parameters()]


__all__ = ["DynamicConv2d", "DynamicMode", "annealed_temperature", "centre_taps", "dynamic_parameters", "is_dynamic_layer",
           "non_static_parameters", "pointwise", "set_progress"]
