"""Seconds per training iteration of DACS-style self-training on the toy city, beside source-only, in one run.

The toy-city recipes (U-Net-R18, batch 8 source + 8 target, 64x128) are built by the CLI and trained by
``pl.Trainer.fit`` as in ``step_time.py`` (a callback timestamps the end of every batch). Rounds are interleaved and
medians reported, with each row's ratio to the source-only iteration of the same network:

* ``source_only`` — one forward/backward of the source batch;
* ``dacs`` — source forward/backward, teacher forward on the target, mixing, strong augmentation, mixed
  forward/backward, EMA update;
* ``daformer-style`` — ``toycity/daformer.yaml``: DACS with rare-class sampling of the source (no ImageNet feature
  distance without ImageNet weights), the toy-city DAFormer-style entry;
* ``dacs + mic`` — ``toycity/daformer_mic.yaml``: the same plus the masked target's forward/backward (MIC).

Issue target (DAFormer-style step <= 1.6x source-only). The passes alone bound it: DACS does 2 student
forward/backward passes and 1 teacher forward where source-only does 1 forward/backward, MIC one more
forward/backward. So the script also times the network's passes on a batch of the same size, outside Lightning —
``fb`` (forward, loss, backward, SGD step) and ``tf`` (a no-grad forward) — and prints the floor
``(2 fb + tf) / fb`` and what each recipe spends beyond its passes (mixing, augmentation, EMA, Lightning).

Usage: python benchmarks/self_training_step.py [--steps 30] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_time import BatchClock, build, median_gap  # noqa: E402

TOYCITY = Path(__file__).resolve().parent.parent / "recipes" / "toycity"
RUNS = {"source_only": (TOYCITY / "source_only.yaml", ()),
        "dacs": (TOYCITY / "dacs.yaml", ()),
        "daformer-style": (TOYCITY / "daformer.yaml", ()),
        "dacs + mic": (TOYCITY / "daformer_mic.yaml", ())}
PASSES = {"source_only": (1, 0), "dacs": (2, 1), "daformer-style": (2, 1), "dacs + mic": (3, 1)}  # (fb, tf)


def time_run(recipe: Path, extra: tuple[str, ...], steps: int) -> float:
    """Median seconds per iteration of ``Trainer.fit`` on the recipe's module and DataModule."""
    module, data = build(recipe, *extra)
    clock = BatchClock()
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[clock], limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, data)
    return median_gap(clock.stamps, warmup=3)


def time_passes(recipe: Path, steps: int) -> tuple[float, float]:
    """Median seconds of one training pass ``fb`` and one no-grad forward ``tf`` of the recipe's network on a batch of
    the recipe's size (random images and labels), without Lightning."""
    module, data = build(recipe)
    net, n = module.net.train(), data.hparams.get("batch_size", 8)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 64, 128, generator=g), torch.randint(0, 19, (n, 64, 128), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    fb, tf = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x).logits, y).backward()
        opt.step()
        t1 = time.perf_counter()
        with torch.no_grad():
            net(x)
        fb.append(t1 - t0), tf.append(time.perf_counter() - t1)
    return statistics.median(fb[3:]), statistics.median(tf[3:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="iterations per timed run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"load average before: {os.getloadavg()}  threads: {args.threads}  torch {torch.__version__}")
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, (recipe, extra) in RUNS.items():
            times.setdefault(name, []).append(time_run(recipe, extra, args.steps))
        fb, tf = time_passes(RUNS["source_only"][0], args.steps)
        times.setdefault("fb", []).append(fb), times.setdefault("tf", []).append(tf)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    fb, tf = med.pop("fb"), med.pop("tf")
    print(f"\nnetwork passes (batch of the recipe, no Lightning): fb {fb:.3f} s, tf {tf:.3f} s; "
          f"floor of a DACS step (2 fb + tf) / fb = {(2 * fb + tf) / fb:.2f}x")
    print(f"\n{'toy-city recipe':<20}{'s/iteration':>12}{'x source-only':>15}{'passes':>10}{'beyond passes':>15}")
    for name, t in med.items():
        k, j = PASSES[name]
        passes = k * fb + j * tf
        print(f"{name:<20}{t:>12.3f}{t / med['source_only']:>15.2f}{passes:>10.3f}{t - passes:>15.3f}")


if __name__ == "__main__":
    main()
