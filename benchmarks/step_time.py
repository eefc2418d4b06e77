"""Seconds per training iteration of every digits recipe, beside the same iteration as an in-memory plain PyTorch loop.

Each recipe of ``recipes/digits/`` (LeNet, batch 64 source + 64 target, embedded digits) is built by the CLI
(``domadapt fit --config R`` without running) and trained by ``pl.Trainer.fit`` on its own DataModule; a callback
timestamps the end of every batch, so a figure holds data loading, the optimiser step(s) and logging: what a user
waits for between two iterations. Beside them, source-only and DANN are written as plain PyTorch loops over
tensors already normalised in memory (a fresh permutation each epoch, the recipe's network, loss module, parameter
groups, SGD and learning-rate schedule, no framework, no DataLoader). Rounds are interleaved; medians reported.

Then one whole ``domadapt fit`` of the source-only recipe (``--steps-whole`` iterations, with its validation,
loggers and checkpoints, start-up included) against the plain loop's time for as many iterations.

Target (issue "a fast loop on embedded data"): every recipe's iteration <= 1.15x the plain loop of the same
iteration (source-only and DANN). The older "DANN <= 1.6x source-only" is retired: DANN forwards twice the images.

Usage: python benchmarks/step_time.py [--steps 80] [--rounds 3] [--threads 2] [--steps-whole 400]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from domadapt.lightning_cli import run_lightning

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "digits"
SINGLE_SOURCE = sorted(p for p in RECIPES.glob("*.yaml") if "multisource" not in p.stem)


def build(recipe: Path, *extra: str):
    """``(module, datamodule)`` of a recipe, as ``domadapt fit --config recipe`` builds them."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli = run_lightning(["--config", str(recipe), *extra], run=False)  # no subcommand without run
    return cli.model, cli.datamodule


class BatchClock(pl.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.stamps.append(time.perf_counter())


def median_gap(stamps: list[float], warmup: int = 5) -> float:
    return statistics.median([b - a for a, b in zip(stamps, stamps[1:])][warmup:])


def time_recipe(recipe: Path, steps: int) -> float:
    """Median seconds per iteration of ``Trainer.fit`` on the recipe's module and DataModule."""
    module, data = build(recipe)
    clock = BatchClock()
    trainer = pl.Trainer(max_steps=steps * module.optimizer_steps_per_batch, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
                         limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, data)
    return median_gap(clock.stamps)


def in_memory(data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source images, labels and target images of a DataModule, normalised once, as tensors."""
    data.setup()
    src, tgt = data.sources[0], data.target
    return (src._transformed_images().whole, torch.from_numpy(src.labels), tgt._transformed_images().whole)


def batches(n: int, batch: int, seed: int):
    """Index batches of a fresh permutation per epoch (``drop_last``)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1, batch):
            yield perm[i:i + batch]


def time_plain(recipe: Path, steps: int, adversarial: bool) -> float:
    """The recipe's iteration written by hand: forward (source, or source + target for DANN), cross-entropy (+ the
    recipe's domain-adversarial loss), SGD step with the recipe's parameter groups, ``(1 + 10p)^-0.75`` schedule."""
    module, data = build(recipe)
    xs, ys, xt = in_memory(data)
    net, hp, b = module.net, module.hparams, data.batch_size
    groups = [{"params": g["params"], "lr": hp.lr * g.get("lr_mult", 1.0)} for g in module.param_groups()]
    opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (1 + 10 * i / steps) ** -0.75)
    source, target = batches(len(xs), b, 0), batches(len(xt), b, 1)
    stamps = []
    for i in range(steps):
        s, t = next(source), next(target)
        if adversarial:
            module.loss.set_progress(i / steps)
            out = net(torch.cat([xs[s], xt[t]]))
            loss = F.cross_entropy(out.logits[:b], ys[s]) + module.loss(out.features[:b], out.features[b:])
        else:
            loss = F.cross_entropy(net(xs[s]).logits, ys[s])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        stamps.append(time.perf_counter())
    return median_gap(stamps)


def time_whole_fit(recipe: Path, steps: int) -> float:
    """Wall seconds of a whole ``domadapt fit`` (validation, loggers, checkpoints, start-up included)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_lightning(["fit", "--config", str(recipe), f"--trainer.default_root_dir={out}", "--run_name=bench",
                           f"--trainer.max_steps={steps}", "--trainer.enable_progress_bar=false",
                           "--trainer.check_val_every_n_epoch=1"])
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=80, help="iterations per timed run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--steps-whole", type=int, default=400, help="iterations of the whole-fit comparison (0 = skip)")
    p.add_argument("--recipes", default="", help="comma-separated recipe stems (default: every single-source one)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    recipes = [r for r in SINGLE_SOURCE if not args.recipes or r.stem in args.recipes.split(",")]
    plain = {"source_only": False, "dann": True}
    print(f"load average before: {os.getloadavg()}  threads: {args.threads}  torch {torch.__version__}")
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for recipe in recipes:
            times.setdefault(recipe.stem, []).append(time_recipe(recipe, args.steps))
            if recipe.stem in plain:
                times.setdefault(f"{recipe.stem}, plain loop", []).append(
                    time_plain(recipe, args.steps, plain[recipe.stem]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'recipe (recipes/digits)':<28}{'s/iteration':>12}{'x plain loop':>14}")
    for name, t in med.items():
        ref = med.get(f"{name}, plain loop")
        print(f"{name:<28}{t:>12.4f}{(f'{t / ref:.2f}' if ref else ''):>14}")
    for name in plain:
        if name in med and f"{name}, plain loop" in med:
            print(f"{name}: {med[name] / med[f'{name}, plain loop']:.2f}x the plain loop (target <= 1.15x)")
    source_only = RECIPES / "source_only.yaml"
    if args.steps_whole and source_only in recipes:
        whole = time_whole_fit(source_only, args.steps_whole)
        plain_whole = med["source_only, plain loop"] * args.steps_whole
        print(f"\nwhole `domadapt fit` of {args.steps_whole} source-only iterations (validation every epoch, loggers, "
              f"checkpoints, start-up): {whole:.1f} s; the plain loop's {args.steps_whole} iterations: "
              f"{plain_whole:.1f} s")


if __name__ == "__main__":
    main()
