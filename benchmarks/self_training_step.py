"""Seconds per training iteration of DACS-style self-training on the toy city, beside source-only, in one run.

The toy-city recipes (U-Net-R18, batch 8 source + 8 target, 64x128) are built by the CLI and trained by
``pl.Trainer.fit`` as in ``step_time.py`` (a callback timestamps the end of every batch). Rounds are interleaved and
medians reported, with each row's ratio to the source-only iteration of the same network:

* ``source_only`` — one forward/backward of the source batch;
* ``dacs`` — source forward/backward, teacher forward on the target, mixing, strong augmentation, mixed
  forward/backward, EMA update;
* ``dacs + mic`` — the same plus the masked target's forward/backward (MIC, ``--model.init_args.mic_weight=1``).

Issue target (DAFormer-style step <= 1.6x source-only) — what the extra forwards cost is printed beside it: DACS does
2 student forward/backward passes and 1 teacher forward where source-only does 1 forward/backward, MIC one more
forward/backward.

Usage: python benchmarks/self_training_step.py [--steps 30] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_time import BatchClock, build, median_gap  # noqa: E402

TOYCITY = Path(__file__).resolve().parent.parent / "recipes" / "toycity"
RUNS = {"source_only": (TOYCITY / "source_only.yaml", ()),
        "dacs": (TOYCITY / "dacs.yaml", ()),
        "dacs + mic": (TOYCITY / "dacs.yaml", ("--model.init_args.mic_weight=1", "--model.init_args.mic_block=16"))}


def time_run(recipe: Path, extra: tuple[str, ...], steps: int) -> float:
    """Median seconds per iteration of ``Trainer.fit`` on the recipe's module and DataModule."""
    module, data = build(recipe, *extra)
    clock = BatchClock()
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[clock], limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, data)
    return median_gap(clock.stamps, warmup=3)


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
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'toy-city recipe':<20}{'s/iteration':>12}{'x source-only':>15}")
    for name, t in med.items():
        print(f"{name:<20}{t:>12.3f}{t / med['source_only']:>15.2f}")


if __name__ == "__main__":
    main()
