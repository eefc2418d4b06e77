"""Forward+backward time of a dynamic (DRT) ResNet vs its static twin, and vs naive per-sample kernels.

Variants, all the same :class:`~domadapt.models.DynamicResNet` (ResNet-50 by default, 1,000 classes):

* ``static``  — ``dynamic=False``: torchvision's network;
* ``dynamic`` — domadapt's batched residual dynamic conv: one static conv for the batch plus the
  per-sample aggregated 1x1 residual ``(sum_k pi_k Phi_k) x`` as one batched matmul;
* ``stacked`` — the same maths with the ``K`` residual 1x1 convs run as one conv to ``K C_out``
  channels followed by the attention-weighted sum (kept to show why the layer aggregates first);
* ``naive``   — per-sample loop: build each sample's ``3x3`` kernel and call ``F.conv2d`` per sample.

Residual kernels are non-zero (as after training). One timed repeat = one ``forward -> logits.sum()
-> backward`` per variant, variants interleaved so that load from other processes hits them alike;
the median over repeats is reported after one warm-up step each. Parameter counts and FLOPs
(``torch.utils.flop_counter.FlopCounterMode``, forward, per image) are printed for every variant.

Run::

    python benchmarks/dynamic_conv.py                          # ResNet-50, batch 16, 224x224, 5 repeats
    python benchmarks/dynamic_conv.py --batch-size 8 --size 160 --repeats 3 --variants static,dynamic
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from domadapt.layers.dynamic_conv import DynamicConv2d, centre_taps
from domadapt.models import DynamicResNet


def stacked_forward(layer: DynamicConv2d, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """DRT residual as ``K`` 1x1 convs stacked into one conv to ``K C_out`` channels + weighted sum."""
    pi = layer.attention(x if context is None else context)  # (B, K)
    out = layer._static(x, layer.bias)
    taps = centre_taps(x, layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    k, c_out = layer.num_kernels, layer.out_channels
    phi = layer.residual.reshape(k * c_out, -1, 1, 1)  # (K C_out, C_in, 1, 1), groups=1 here
    res = F.conv2d(taps, phi).unflatten(1, (k, c_out))  # (B, K, C_out, H, W)
    return out + torch.einsum("bk,bkchw->bchw", pi, res)


def naive_forward(layer: DynamicConv2d, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample kernels and one ``F.conv2d`` per sample (what the batched layer avoids)."""
    kernels = layer.aggregated_weight(x if context is None else context)  # (B, C_out, C_in, k, k)
    return torch.cat([F.conv2d(x[i : i + 1], kernels[i], layer.bias, layer.stride, layer.padding, layer.dilation,
                               layer.groups) for i in range(x.shape[0])])


def build(variant: str, arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = DynamicResNet(arch, num_classes=1000, dynamic=variant != "static")
    for m in model.modules():
        if isinstance(m, DynamicConv2d):
            m.reset_residual(zero=False)
            if variant in ("stacked", "naive"):
                m.forward = types.MethodType(stacked_forward if variant == "stacked" else naive_forward, m)
    return model.train()


def step(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(x).logits.sum().backward()
    return time.perf_counter() - start


def forward_flops(model: torch.nn.Module, size: int) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    model.train()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet50", "resnet101"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="input side (pixels)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (median reported)")
    parser.add_argument("--variants", default="static,dynamic,stacked,naive")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()}")
    print(f"{args.arch}, batch {args.batch_size}, {args.size}x{args.size}, forward+backward, {args.repeats} repeats")
    models = {v: build(v, args.arch) for v in variants}
    for v, m in models.items():
        params = sum(p.numel() for p in m.parameters())
        print(f"  {v:<8} params {params / 1e6:7.2f} M   forward FLOPs/image {forward_flops(m, args.size) / 1e9:6.2f} G")
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:  # warm-up (allocator, oneDNN primitive caches)
        step(models[v], x)
    for r in range(args.repeats):
        for v in variants:
            times[v].append(step(models[v], x))
        print(f"  repeat {r + 1}: " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in variants), flush=True)
    median = {v: statistics.median(t) for v, t in times.items()}
    for v in variants:
        print(f"median {v:<8} {median[v]:.3f} s/step")
    if "static" in median and "dynamic" in median:
        print(f"ratio dynamic / static: {median['dynamic'] / median['static']:.2f}x (target <= 1.35)")
    if "stacked" in median and "dynamic" in median:
        print(f"ratio stacked / dynamic: {median['stacked'] / median['dynamic']:.2f}x")
    if "naive" in median and "dynamic" in median:
        print(f"ratio naive / dynamic: {median['naive'] / median['dynamic']:.2f}x (target >= 3)")
    return median


if __name__ == "__main__":
    main()
