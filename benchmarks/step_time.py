"""Seconds per training iteration of every classification method on the embedded digits.

Batch 64 source + 64 target, DigitsNet, CPU. Every method runs through ``pl.Trainer.fit`` with the
same DataModule; a callback timestamps the end of each training batch, so a figure includes data
loading, the optimiser step(s) and Lightning's logging — what a user waits for. Beside them the
same DANN iteration is written as a plain PyTorch loop (same net, loss, optimiser, data loaders) to
measure what domadapt + Lightning add. Methods are timed in interleaved rounds; medians reported.

Targets (issue "alignment methods"): DANN <= 1.6x source-only; domadapt DANN <= 1.15x plain loop.

Usage: python benchmarks/step_time.py [--steps 60] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from domadapt.data import Augment, DomainAdaptationDataModule, EmbeddedDigits
from domadapt.losses import DomainAdversarialLoss
from domadapt.methods import CDAN, DANN, MCD, FeatureAlignment, SourceOnly
from domadapt.losses import CORALLoss, EntropyLoss, MinimumClassConfusionLoss, MMDLoss
from domadapt.models import DigitsNet

NORM = dict(mean=(0.5,) * 3, std=(0.5,) * 3)


def datamodule() -> DomainAdaptationDataModule:
    return DomainAdaptationDataModule(EmbeddedDigits("digits"), EmbeddedDigits("digits-photo"),
                                      train_transform=Augment(**NORM), batch_size=64)


def methods() -> dict:
    common = dict(lr=0.01, head_lr_mult=1.0, lr_schedule="inv")
    return {
        "SourceOnly": lambda: SourceOnly(DigitsNet(), **common),
        "DANN": lambda: DANN(DigitsNet(), grl_min=0.1, **common),
        "CDAN": lambda: CDAN(DigitsNet(), **common),
        "DAN (MMD)": lambda: FeatureAlignment(DigitsNet(), MMDLoss(), **common),
        "CORAL": lambda: FeatureAlignment(DigitsNet(), CORALLoss(), **common),
        "Entropy": lambda: FeatureAlignment(DigitsNet(), EntropyLoss(), adaptation_weight=0.1, **common),
        "MCC": lambda: FeatureAlignment(DigitsNet(), MinimumClassConfusionLoss(), **common),
        "MCD": lambda: MCD(DigitsNet(), num_k=4, **common),
    }


class BatchClock(pl.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.stamps.append(time.perf_counter())


def time_lightning(make, steps: int) -> float:
    module, clock = make(), BatchClock()
    trainer = pl.Trainer(max_steps=steps * module.optimizer_steps_per_batch, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
                         limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, datamodule())
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])][5:]  # skip warm-up iterations
    return statistics.median(gaps)


def time_plain_dann(steps: int) -> float:
    """The DANN iteration by hand: concat forward, CE + GRL-discriminator BCE, SGD step."""
    net = DigitsNet()
    loss_fn = DomainAdversarialLoss(net.num_features, min_coeff=0.1)
    opt = torch.optim.SGD([*net.parameters(), *loss_fn.parameters()], lr=0.01, momentum=0.9, weight_decay=5e-4)
    dm = datamodule()
    dm.setup()
    loaders = dm.train_dataloader()
    stamps = []
    it = iter(loaders)
    for i in range(steps):
        batch = next(it)
        batch = batch[0] if isinstance(batch, tuple) else batch
        xs, ys, xt = batch["source"]["image"], batch["source"]["label"], batch["target"]["image"]
        loss_fn.set_progress(i / steps)
        out = net(torch.cat([xs, xt]))
        n = xs.shape[0]
        loss = F.cross_entropy(out.logits[:n], ys) + loss_fn(out.features[:n], out.features[n:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        stamps.append(time.perf_counter())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][5:]
    return statistics.median(gaps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60, help="iterations per timed run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    pl.seed_everything(0, verbose=False)
    print(f"load average before: {os.getloadavg()}  threads: {args.threads}")
    makers = methods()
    times: dict[str, list[float]] = {name: [] for name in [*makers, "DANN, plain PyTorch loop"]}
    for r in range(args.rounds):
        for name, make in makers.items():
            times[name].append(time_lightning(make, args.steps))
        times["DANN, plain PyTorch loop"].append(time_plain_dann(args.steps))
        print(f"round {r + 1}/{args.rounds} done")
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["SourceOnly"]
    print(f"\n{'method':<28}{'s/iteration':>12}{'x source-only':>15}")
    for name, t in med.items():
        print(f"{name:<28}{t:>12.4f}{t / base:>15.2f}")
    print(f"\nDANN / source-only: {med['DANN'] / base:.2f}x (target <= 1.6x)")
    print(f"domadapt DANN / plain PyTorch DANN: {med['DANN'] / med['DANN, plain PyTorch loop']:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
