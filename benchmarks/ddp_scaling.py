"""Training throughput of the embedded segmentation recipe on 1 vs 2 CPU processes (Lightning DDP, gloo).

Runs ``domadapt fit --config recipes/toycity/source_only.yaml`` (toy city 64x128, U-Net-R18 with the light
decoder, batch 8 + 8 per process) twice in fresh subprocesses — ``--trainer.devices=1`` and
``--trainer.devices=2 --trainer.strategy=ddp`` — each process with ``--threads`` BLAS/OpenMP threads.
Rank 0 times the training batches after ``--warmup`` of them (process start, data generation and DDP
set-up are not counted) and reports samples/s = batches x batch size x processes / seconds. The point of
DDP on one CPU machine is correctness (tests/core/test_ddp.py); the ratio is information: two processes
share the same cores and memory bandwidth.

Run::

    python benchmarks/ddp_scaling.py                      # 30 timed iterations, 1 thread per process
    python benchmarks/ddp_scaling.py --steps 60 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "toycity" / "source_only.yaml"


class BatchTimer(pl.Callback):
    """Rank 0: wall time of the training batches after ``warmup``; written to ``$DDP_BENCH_OUT`` at the end."""

    def __init__(self, warmup: int = 5) -> None:
        self.warmup, self.start, self.timed = warmup, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed
        if done == self.warmup:
            self.start = time.perf_counter()
        elif done > self.warmup:
            self.timed += 1

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.start is not None:
            seconds = time.perf_counter() - self.start
            batch = trainer.datamodule.batch_size + trainer.datamodule.target_batch_size
            Path(os.environ["DDP_BENCH_OUT"]).write_text(json.dumps(
                {"batches": self.timed, "seconds": seconds, "processes": trainer.world_size,
                 "samples_per_s": self.timed * batch * trainer.world_size / seconds}))


def run(devices: int, steps: int, warmup: int, threads: int, root: Path) -> dict:
    out = root / f"devices{devices}.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)]), "DDP_BENCH_OUT": str(out),
           "DOMADAPT_PROGRESS": "0"}
    args = [sys.executable, "-m", "domadapt", "fit", "--config", str(RECIPE), f"--trainer.max_steps={steps + warmup}",
            f"--trainer.default_root_dir={root / f'run{devices}'}", "--trainer.accelerator=cpu",
            f"--trainer.devices={devices}", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.check_val_every_n_epoch=1000",
            "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--trainer.callbacks+=ddp_scaling.BatchTimer", f"--trainer.callbacks.warmup={warmup}"]
    if devices > 1:
        args.append("--trainer.strategy=ddp")
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training iterations per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per process")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        results = {d: run(d, args.steps, args.warmup, args.threads, Path(tmp)) for d in (1, 2)}
    for d, r in results.items():
        print(f"{d} process(es): {r['batches']} batches in {r['seconds']:.2f} s -> {r['samples_per_s']:.1f} samples/s")
    print(f"ratio 2 processes / 1 process: {results[2]['samples_per_s'] / results[1]['samples_per_s']:.2f}x "
          f"(load average after: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
