"""Images/s of the GTA5-sized training pipeline with 0 and with N DataLoader workers.

Pipeline per sample (what a GTA5 -> Cityscapes recipe runs): decode a 1914x1052 RGB PNG and its
P-mode label -> resize to 1280x720 -> random 512x512 crop -> horizontal flip (p=0.5) -> normalise ->
tensor, through :class:`domadapt.data.gta5.GTA5` and :class:`domadapt.data.transforms.Augment`.

The files are generated in a temporary directory in the GTA5 layout (``images/NNNNN.png``,
``labels/NNNNN.png``): smooth colour fields plus pixel noise, so that PNG decoding costs about what
a real frame costs (a few MB per file, not a trivially compressible flat image), and blocky label
maps of Cityscapes ids. Each worker setting gets its own DataLoader (persistent workers, one
unmeasured warm-up epoch); the settings are then timed in interleaved rounds (one epoch each per
round) so that load from other processes hits them alike, and the median per setting is reported.

Run::

    python benchmarks/data_throughput.py                       # 24 images, 5 rounds, workers 0,2
    python benchmarks/data_throughput.py --images 48 --repeats 7 --workers 0,1,2,4
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from domadapt.data.catalog import CS_ID_TO_TRAINID
from domadapt.data.gta5 import GTA5
from domadapt.data.transforms import Augment

GTA5_SIZE = (1914, 1052)  # (W, H) of a GTA5 frame


def make_gta5_tree(root: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` image/label pairs in the GTA5 layout; returns the total bytes written."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    w, h = GTA5_SIZE
    ids = np.array(sorted(CS_ID_TO_TRAINID) + [0, 1], np.uint8)  # road, car, ... plus void ids
    palette = rng.integers(0, 256, 256 * 3, dtype=np.uint8).tolist()
    total = 0
    for i in range(1, n + 1):
        # smooth field (bicubic upsampling of a coarse grid) + noise: compresses like a rendering
        coarse = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((w, h), Image.BICUBIC), np.int16)
        rgb = (smooth + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)).clip(0, 255).astype(np.uint8)
        label = Image.fromarray(rng.choice(ids, size=(33, 60))).resize((w, h), Image.NEAREST)
        label.putpalette(palette)  # mode P: the index is the Cityscapes id, as in GTA5
        name = f"{i:05d}.png"
        Image.fromarray(rgb).save(root / "images" / name, compress_level=6)
        label.save(root / "labels" / name)
        total += (root / "images" / name).stat().st_size + (root / "labels" / name).stat().st_size
    return total


def epoch_seconds(loader: DataLoader) -> tuple[float, float]:
    """Wall time and main-process CPU time of one pass over ``loader`` (batches are touched)."""
    start, cpu = time.perf_counter(), time.process_time()
    for batch in loader:
        assert batch["image"].shape[-2:] == (512, 512)
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[int, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24, help="generated image/label pairs")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (epochs) per setting")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", default="0,2", help="comma-separated num_workers settings")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch / OpenCV threads of the main process (workers always use 1)")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]

    load_before = os.getloadavg()[0]  # before this script starts any worker
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"cpus={os.cpu_count()} torch={torch.__version__} images={args.images} batch_size={args.batch_size} "
          f"repeats={args.repeats} main-process threads={args.threads} load average={_load()}")
    with tempfile.TemporaryDirectory(prefix="gta5_bench_") as tmp:
        root = Path(tmp)
        size = make_gta5_tree(root, args.images)
        mb = size / args.images / 1e6
        print(f"wrote {args.images} pairs of {GTA5_SIZE[0]}x{GTA5_SIZE[1]} PNGs ({mb:.2f} MB/pair)")
        dataset = GTA5(str(root), transform=Augment(resize=(720, 1280), crop=(512, 512), hflip=0.5))
        dataset.setup()
        loaders = {
            w: DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=w,
                          persistent_workers=w > 0, worker_init_fn=_one_thread if w > 0 else None)
            for w in workers
        }
        for loader in loaders.values():
            epoch_seconds(loader)  # warm-up: worker start-up, caches
        times: dict[int, list[float]] = {w: [] for w in workers}
        cpu0: list[float] = []  # main-process CPU seconds of the workers=0 epochs
        for _ in range(args.repeats):
            for w, loader in loaders.items():
                wall, used = epoch_seconds(loader)
                times[w].append(wall)
                if w == 0:
                    cpu0.append(used)
        del loaders  # shut persistent workers down before the directory goes away
    rates = {w: len(dataset) / statistics.median(t) for w, t in times.items()}
    for w in workers:
        spread = ", ".join(f"{len(dataset) / t:.2f}" for t in times[w])
        print(f"workers={w}: {rates[w]:.2f} images/s (median of {args.repeats}; rounds: {spread})")
    if cpu0:  # contention-free cost: with 0 workers the main process does all the work
        per_image = statistics.median(cpu0) / len(dataset)
        print(f"CPU time per image (workers=0): {per_image * 1e3:.0f} ms "
              f"-> at most {1 / per_image:.2f} images/s per free core")
    print(f"load average after: {_load()}")
    if load_before > 1.0:
        print(f"warning: load average {load_before:.2f} before the run: other processes compete for the CPUs "
              "and the worker speed-up is under-estimated")
    base = workers[0]
    for w in workers[1:]:
        print(f"ratio workers={w} / workers={base}: {rates[w] / rates[base]:.2f}x")
    return rates


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _one_thread(_: int) -> None:
    cv2.setNumThreads(1)  # DataLoader already sets torch to 1 thread per worker


if __name__ == "__main__":
    main()
