"""Peak memory of pseudo-label generation for 500 vs 2,000 target images (256×512, 19 classes).

The point is the statistics and writing path of :func:`domadapt.pseudo.generate_pseudo_labels`:
per-class confidence histograms instead of BDL's arrays of every confidence (METHODS.md §1.3(b)), a
disk cache between the two passes and one PNG written per image. Peak RSS must not grow with the
number of images. Each size runs in a fresh subprocess (so imports and allocator state are the
same) that reports its own peak RSS (``getrusage``) and its RSS before generation.

Images are generated lazily per index (smooth random colour fields; never held all at once) and the
"model" is a fixed per-pixel linear map with a vertical prior, giving structured, varied confidences.

A second check recomputes every confidence of the small run, sorts them per class and compares
the exact median (BDL's rule ``v[round(0.5·n)]``, capped at 0.9) with the written thresholds: they
must agree within one histogram bin.

Target: peak RSS(2,000) ≤ 1.15 × peak RSS(500).

Usage: python benchmarks/pseudo_label_memory.py [--sizes 500,2000] [--threads 2] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from domadapt.data.base import SegmentationDataset
from domadapt.structures import NetOutput

H, W, K = 256, 512, 19


class FieldImages(SegmentationDataset):
    """``n`` smooth random RGB fields of 256×512 generated from the index (no ground truth)."""

    def __init__(self, n: int) -> None:
        super().__init__(with_labels=False)
        self.n = n

    def describe(self) -> str:
        return f"FieldImages({self.n}x{H}x{W})"

    def _index(self) -> list:
        return list(range(self.n))

    def _load(self, entry: int):
        rng = np.random.default_rng(entry)
        coarse = rng.integers(0, 256, (8, 16, 3)).astype(np.float32)  # upsampled -> smooth regions
        img = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], size=(H, W),
                                              mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        img = img + rng.normal(0, 8, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8), None


class FakeSegmenter(nn.Module):
    """Fixed 1×1 conv (3 -> 19) plus a vertical prior (sky-like classes up, road-like classes down)."""

    task = "segmentation"
    num_classes = K
    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, K, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(K, 3, 1, 1, generator=g) * 6)
            self.conv.bias.copy_(torch.randn(K, generator=g))
        rows = torch.linspace(-1, 1, H).view(1, 1, H, 1)
        self.register_buffer("prior", torch.linspace(-2, 2, K).view(1, K, 1, 1) * rows)  # (1, K, H, 1)

    def forward(self, x: torch.Tensor) -> NetOutput:
        return NetOutput(self.conv(x) + self.prior, x)


def child(n: int, out_dir: str, threads: int, batch_size: int) -> None:
    """One generation run; prints a JSON line with peak RSS (MB), RSS before generation and seconds."""
    from domadapt.pseudo.generate import LabelOptions, generate_pseudo_labels
    from domadapt.pseudo.thresholds import ClassPercentile

    torch.set_num_threads(threads)
    ds, model = FieldImages(n), FakeSegmenter()
    before = _rss_now_mb()
    t0 = time.time()
    generate_pseudo_labels(model, ds, out_dir, ClassPercentile(0.5, cap=0.9), LabelOptions(batch_size=batch_size),
                           progress=False, verbose=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(json.dumps({"n": n, "peak_mb": peak, "before_mb": before, "seconds": time.time() - t0}))


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def exact_check(n: int, out_dir: str, threads: int) -> None:
    """Sort every confidence of the run per class; compare the exact capped median with the manifest."""
    from domadapt.pseudo.generate import QUANT, quantize

    torch.set_num_threads(threads)
    ds, model = FieldImages(n).setup(), FakeSegmenter()
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    per_class: list[list[np.ndarray]] = [[] for _ in range(K)]
    with torch.inference_mode():
        for i in range(n):
            x = torch.from_numpy(ds.load_raw(i)[0]).permute(2, 0, 1)[None].float() / 255
            conf, pred = model(x).logits.softmax(1).max(1)
            q = quantize(conf)[0].numpy().astype(np.uint16)  # the confidences generation used
            pred = pred[0].numpy()
            for c in np.unique(pred):
                per_class[c].append(q[pred == c])
    bins = manifest["bins"]
    worst = 0.0
    for c in range(K):
        est = manifest["thresholds"][c]
        if not per_class[c]:
            assert est == 0.0, f"class {c} never predicted but threshold {est}"
            continue
        v = np.sort(np.concatenate(per_class[c])) / QUANT
        exact = min(v[min(int(np.round(0.5 * v.size)), v.size - 1)], 0.9)
        worst = max(worst, abs(est - exact))
    ok = worst <= 1.0 / bins + 1e-12
    print(f"threshold check ({n} images, {sum(len(p) > 0 for p in per_class)} classes predicted): "
          f"max |histogram - exact capped median| = {worst:.6f} vs one bin = {1 / bins:.6f}: {'OK' if ok else 'FAIL'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="500,2000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--child", nargs=2, metavar=("N", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--check", nargs=2, metavar=("N", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(int(a.child[0]), a.child[1], a.threads, a.batch_size)
    if a.check:
        return exact_check(int(a.check[0]), a.check[1], a.threads)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cpus: {os.cpu_count()}; "
          f"images {H}x{W}, {K} classes, batch {a.batch_size}, {a.threads} threads")
    sizes = [int(s) for s in a.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="pl-mem-") as tmp:
        for n in sizes:
            out = str(Path(tmp) / f"n{n}")
            r = subprocess.run([sys.executable, __file__, "--child", str(n), out, "--threads", str(a.threads),
                                "--batch-size", str(a.batch_size)], capture_output=True, text=True, check=True)
            results[n] = json.loads(r.stdout.strip().splitlines()[-1])
            m = results[n]
            print(f"{n:>6} images: peak RSS {m['peak_mb']:8.1f} MB (before generation {m['before_mb']:.1f} MB), "
                  f"{m['seconds']:.1f} s ({1000 * m['seconds'] / n:.0f} ms/image)", flush=True)
        lo, hi = min(sizes), max(sizes)
        ratio = results[hi]["peak_mb"] / results[lo]["peak_mb"]
        inc = (results[hi]["peak_mb"] - results[hi]["before_mb"]) / (results[lo]["peak_mb"] - results[lo]["before_mb"])
        print(f"ratio peak RSS {hi} / {lo} images: {ratio:.3f}x (target <= 1.15x); "
              f"growth during generation only: {inc:.3f}x")
        r = subprocess.run([sys.executable, __file__, "--check", str(lo), str(Path(tmp) / f"n{lo}"),
                            "--threads", str(a.threads)], capture_output=True, text=True, check=True)
        print(r.stdout.strip())


if __name__ == "__main__":
    main()
