"""Memory budget of the real-data recipes' training steps, estimated from the CPU peak (no GPU here).

Each configuration runs in a fresh subprocess: build the network(s) with random weights, one warm-up-free
training step (forward of source + target, backward, optimiser step), and report the process's peak resident
memory (``ru_maxrss``) and its growth over the value before the step. On a GPU the same step needs about the
weights + gradients + optimiser state + activations that the growth measures here, plus the CUDA context
(~0.5 GB) and cuDNN workspaces; with ``--device cuda`` the script reports ``torch.cuda.max_memory_allocated``
instead — a measurement, not an estimate.

Configurations (the recipes' networks and sizes):

* ``deeplabv2`` — DeepLabV2-ResNet-101, 19 classes, 1280x720 source + 1024x512 target, batch 1 + 1, SGD
  (``recipes/segmentation/gta5_to_cityscapes_*.yaml``), with and without gradient checkpointing;
* ``translation`` — the BDL CycleGAN stage: two 9-block ResNet generators (ngf 64) and two 70x70 PatchGANs,
  batch 1 + 1 at ``--translation-size`` (BDL trains on 1024x512 crops; default 512x256 here), Adam;
* ``drt`` — DRT dynamic ResNet-101 (K = 4) with two 3-layer classifiers, 224x224, batch ``--drt-batch``
  + ``--drt-batch`` measured and extrapolated linearly in the batch to 64 + 64 (activations grow with the
  batch; weights and optimiser state do not).

Run::

    python benchmarks/memory_budget.py                  # all, CPU estimate
    python benchmarks/memory_budget.py --only deeplabv2 --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_deeplabv2(device: str, checkpointing: bool) -> None:
    from domadapt.models import DeepLabV2

    net = DeepLabV2("resnet101", 19, gradient_checkpointing=checkpointing).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=2.5e-4, momentum=0.9)
    xs, xt = torch.randn(1, 3, 720, 1280, device=device), torch.randn(1, 3, 512, 1024, device=device)
    y = torch.randint(0, 19, (1, 720, 1280), device=device)
    yield
    loss = torch.nn.functional.cross_entropy(net(xs).logits, y) + net(xt).logits.softmax(1).mean()
    loss.backward()
    opt.step()


def step_translation(device: str, size: tuple[int, int]) -> None:
    from domadapt.models.translation import PatchDiscriminator, ResnetGenerator

    g_a, g_b = ResnetGenerator(n_blocks=9).to(device), ResnetGenerator(n_blocks=9).to(device)
    d_a, d_b = PatchDiscriminator().to(device), PatchDiscriminator().to(device)
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    a, b = torch.randn(1, 3, *size, device=device), torch.randn(1, 3, *size, device=device)
    yield
    fake_b, fake_a = g_a(a), g_b(b)
    loss_g = (d_a(fake_b) - 1).square().mean() + (d_b(fake_a) - 1).square().mean() \
        + 10 * ((g_b(fake_b) - a).abs().mean() + (g_a(fake_a) - b).abs().mean())
    loss_g.backward()
    opt_g.step()
    loss_d = d_a(fake_b.detach()).square().mean() + (d_a(b) - 1).square().mean() \
        + d_b(fake_a.detach()).square().mean() + (d_b(a) - 1).square().mean()
    loss_d.backward()
    opt_d.step()


def step_drt(device: str, batch: int) -> None:
    from domadapt.models import DynamicResNet

    net = DynamicResNet("resnet101", 345, bottleneck_dim=None).to(device).train()
    heads = [torch.nn.Sequential(torch.nn.Linear(2048, 1000), torch.nn.BatchNorm1d(1000), torch.nn.ReLU(),
                                 torch.nn.Linear(1000, 1000), torch.nn.BatchNorm1d(1000), torch.nn.ReLU(),
                                 torch.nn.Linear(1000, 345)).to(device) for _ in range(2)]
    params = [*net.parameters(), *heads[0].parameters(), *heads[1].parameters()]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    x = torch.randn(2 * batch, 3, 224, 224, device=device)
    y = torch.randint(0, 345, (batch,), device=device)
    yield
    f = net(x).features
    p1, p2 = heads[0](f), heads[1](f)
    discrepancy = (p1[batch:].softmax(1) - p2[batch:].softmax(1)).abs().mean()
    loss = torch.nn.functional.cross_entropy(p1[:batch], y) + discrepancy
    loss.backward()
    opt.step()


def child(name: str, device: str, arg: str) -> None:
    """Run one configuration in this process and print its figures as JSON."""
    steps = {"deeplabv2": lambda: step_deeplabv2(device, arg == "ckpt"),
             "translation": lambda: step_translation(device, tuple(int(v) for v in arg.split("x"))[::-1]),
             "drt": lambda: step_drt(device, int(arg))}
    gen = steps[name]()
    next(gen)  # built: weights and inputs allocated
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = peak_mb()
    for _ in gen:
        pass
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_mb()
    print(json.dumps({"before_mb": before, "peak_mb": peak}))


def measure(name: str, device: str, arg: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, "--device", device, "--arg", arg,
                          "--threads", str(threads)], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="deeplabv2,translation,drt")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--translation-size", default="512x256", help="WxH of the translation stage's images")
    parser.add_argument("--drt-batch", type=int, default=4, help="per-domain batch measured (extrapolated to 64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--arg", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args.device, args.arg)
        return
    what = "GPU max_memory_allocated (measured)" if args.device == "cuda" else \
        "CPU peak RSS (estimate of the GPU need: growth = weights' gradients + optimiser state + activations)"
    print(f"memory budget, {what}")
    only = args.only.split(",")
    if "deeplabv2" in only:
        for arg, label in (("plain", "DeepLabV2-R101 1280x720 + 1024x512, batch 1+1"),
                           ("ckpt", "  the same with gradient checkpointing")):
            r = measure("deeplabv2", args.device, arg, args.threads)
            print(f"{label:<58} peak {r['peak_mb'] / 1024:6.2f} GB, step adds {(r['peak_mb'] - r['before_mb']) / 1024:6.2f} GB")
    if "translation" in only:
        r = measure("translation", args.device, args.translation_size, args.threads)
        print(f"{'BDL translation (2 G + 2 D) ' + args.translation_size + ', batch 1+1':<58} peak "
              f"{r['peak_mb'] / 1024:6.2f} GB, step adds {(r['peak_mb'] - r['before_mb']) / 1024:6.2f} GB")
    if "drt" in only:
        b = args.drt_batch
        small, large = measure("drt", args.device, str(b), args.threads), measure("drt", args.device, str(2 * b),
                                                                                  args.threads)
        grow_small, grow_large = (r["peak_mb"] - r["before_mb"] for r in (small, large))
        per_pair = (grow_large - grow_small) / b  # MB per extra source + target pair
        at64 = grow_small + per_pair * (64 - b)
        print(f"{'DRT dynamic R101 224x224, batch %d+%d / %d+%d' % (b, b, 2 * b, 2 * b):<58} step adds "
              f"{grow_small / 1024:6.2f} / {grow_large / 1024:6.2f} GB")
        print(f"{'  extrapolated to 64+64 (linear in the batch)':<58} step adds ~{at64 / 1024:6.2f} GB "
              f"(+ {small['before_mb'] / 1024:.2f} GB before the step)")


if __name__ == "__main__":
    main()
