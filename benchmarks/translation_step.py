"""Seconds per CycleGAN training iteration of BDL's translation stage, with and without the perceptual loss.

One iteration = the generator step (4 generator passes + 2 identity passes, LSGAN through both
discriminators, and with the perceptual loss 6 passes of the frozen segmentation net, 4 of them
backpropagated to the images) + the discriminator step. Paper-size networks (ResNet generator ngf 64
with 9 blocks, 70x70 PatchGAN ndf 64), batch 1 + 1 at 256x256 (CycleGAN's usual crop; BDL uses 452).
Variants: no perceptual loss; perceptual net DeepLabV2-ResNet-101 (19 classes, logits at 1/8, as BDL);
perceptual net smp U-Net ResNet-18. All weights random (``weights=None``). Every variant runs through
``pl.Trainer.fit``; a callback timestamps each training batch; the variants are timed in interleaved
rounds and the median over rounds of each round's median gap is reported, with the ratio to the
variant without perceptual loss.

Usage: python benchmarks/translation_step.py [--steps 4] [--rounds 3] [--threads 2] [--size 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from domadapt.methods.translation import Translation
from domadapt.models import DeepLabV2, SmpSegmenter


class RandomPairs(Dataset):
    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        a, b = (torch.rand(2, 3, self.size, self.size, generator=g) * 2 - 1).unbind(0)
        return {"source": {"image": a}, "target": {"image": b}}


def variants() -> dict:
    return {
        "no perceptual loss": lambda: None,
        "perceptual DeepLabV2-R101": lambda: DeepLabV2("resnet101", 19, weights=None, upsample_logits=False),
        "perceptual smp Unet-R18": lambda: SmpSegmenter("Unet", "resnet18", 19, encoder_weights=None),
    }


class BatchClock(pl.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def time_variant(make_net, steps: int, size: int, device: str) -> float:
    module = Translation(perceptual_net=make_net())
    clock = BatchClock()
    trainer = pl.Trainer(max_steps=2 * (steps + 1), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[clock], limit_val_batches=0, accelerator=device,
                         devices=1)
    trainer.fit(module, DataLoader(RandomPairs(steps + 1, size), batch_size=1))
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]  # the first iteration (warm-up) has no gap
    return statistics.median(gaps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="timed iterations per run (after one warm-up iteration)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    p.add_argument("--size", type=int, default=256, help="square image side")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    pl.seed_everything(0, verbose=False)
    print(f"load average before: {os.getloadavg()}  threads: {args.threads}  device: {args.device}  "
          f"{args.size}x{args.size}, batch 1 + 1")
    makers = variants()
    times: dict[str, list[float]] = {name: [] for name in makers}
    for r in range(args.rounds):
        for name, make in makers.items():
            times[name].append(time_variant(make, args.steps, args.size, args.device))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["no perceptual loss"]
    print(f"\n{'variant':<30}{'s/iteration':>12}{'x no-perceptual':>17}")
    for name, t in med.items():
        print(f"{name:<30}{t:>12.3f}{t / base:>17.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
