"""Generate pseudo labels for a target training split (BDL's SSL step, METHODS.md §1.3(b)).

Two passes, one forward each image:

1. predict every image (evaluation transform, model in eval mode), accumulate per-class confidence
   histograms (:class:`~domadapt.pseudo.stats.ConfidenceHistogram`) and cache the prediction on disk
   as ``uint8`` class + ``uint16`` confidence (+ ``uint8`` ground truth when available) — 3–4 bytes
   per pixel in a temporary folder inside ``out_dir``, deleted at the end;
2. fit the thresholds on the histograms, then read the cache back and write each label file with
   ``label[p < thr[label]] = 255``.

Caching rather than predicting twice halves the GPU time at the cost of temporary disk (Cityscapes at
512×1024: about 6 GB); ``cache="recompute"`` predicts again instead (the model is deterministic in
eval mode). Confidences are quantised to ``floor(p · 65536) / 65536`` *before* both passes see them,
so the histogram, the thresholds and the kept/ignored decisions all use the same numbers (the
quantisation step, 1.5e-5, is far below a 1/1000 histogram bin). Memory does not grow with the number
of images: the histograms are ``K × bins`` counters and every image is written as soon as it is done.
Classification keeps its ``(N,)`` predictions in memory (a few bytes per image).

Under DDP (an initialised process group: ``torchrun``, SLURM, or inside a Lightning ``ddp`` run) every
process predicts its own shard of the images (``r, r + R, …``, unpadded), the histograms and counts are
summed across processes, so every process fits the same thresholds, each writes the label files of its
shard, and rank 0 writes ``labels.csv`` and the manifest once all are written: the set equals the one a
single process writes.

When the raw target dataset has ground truth (embedded data, Cityscapes train), the manifest reports
per-class *precision of the kept pseudo labels* against it — a diagnostic only: the labels written
never depend on ground truth.
"""

from __future__ import annotations

import copy
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from domadapt import distributed
from domadapt.checkpoint_file import read_checkpoint
from domadapt.data.base import DomainDataset, to_tensor_sample
from domadapt.data.sharding import ShardSampler
from domadapt.evaluation.inference import class_probabilities, native_resolution
from domadapt.evaluation.reports import format_table
from domadapt.io import write_png
from domadapt import fingerprint
from domadapt.pseudo import writer
from domadapt.pseudo.options import LabelOptions
from domadapt.pseudo.stats import ConfidenceHistogram
from domadapt.pseudo.thresholds import ClassPercentile, ThresholdStrategy
from domadapt.structures import IGNORE_INDEX, NetOutput, Task

QUANT = 65536
"""Confidences are stored as ``uint16`` ``floor(p · QUANT)`` (clipped to ``QUANT − 1``)."""


def quantize(confidence: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` float -> ``uint16``-range int32 ``min(floor(p · 65536), 65535)``."""
    return (confidence.double() * QUANT).floor().clamp_(0, QUANT - 1).to(torch.int32)


class _PredictView(Dataset):
    """Raw image -> evaluation transform, plus the raw size and the ground truth for diagnostics."""

    def __init__(self, dataset: DomainDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        image, gt = self.dataset.load_raw(i)  # corrupt images raise: every image needs a label file
        transform = self.dataset.transform or to_tensor_sample
        item = {"image": transform(image=image)["image"], "index": i, "raw_hw": tuple(image.shape[:2]), "gt": None}
        if isinstance(gt, np.ndarray) and gt.shape == image.shape[:2]:
            item["gt"] = gt
        elif isinstance(gt, int | np.integer) and 0 <= int(gt) < IGNORE_INDEX:
            item["gt"] = int(gt)
        return item


def _collate(items: list[dict]) -> dict:
    shapes = {tuple(it["image"].shape) for it in items}
    images = torch.stack([it["image"] for it in items]) if len(shapes) == 1 else [it["image"] for it in items]
    return {"image": images, **{k: [it[k] for it in items] for k in ("index", "raw_hw", "gt")}}


def _class_probabilities(model: torch.nn.Module, x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Class probabilities ``(B, K[, H, W])`` of the one prediction path: the labeller's
    (``pseudo_label_probabilities``, e.g. CDSSL's EMA teacher), else the method's ``predict_probabilities``, else
    (a bare network) :func:`~domadapt.evaluation.inference.class_probabilities` of its native-resolution logits."""
    if hasattr(model, "pseudo_label_probabilities"):
        return model.pseudo_label_probabilities(x, size)
    if hasattr(model, "predict_probabilities"):
        return model.predict_probabilities(x, size)
    with native_resolution(model):
        out = model(x)
    return class_probabilities(out.logits if isinstance(out, NetOutput) else out, size)


def _probabilities(model: torch.nn.Module, x: torch.Tensor, size: tuple[int, int] | None, hflip: bool
                   ) -> torch.Tensor:
    """Class probabilities ``(B, K[, H, W])``; with ``hflip`` the mean of the image's and its mirror's,
    ``p = (P(x) + flip(P(flip(x)))) / 2`` (a segmentation map is mirrored back)."""
    p = _class_probabilities(model, x, size)
    if hflip:
        q = _class_probabilities(model, x.flip(-1), size)
        p = (p + (q.flip(-1) if q.dim() == 4 else q)) / 2
    return p


def _predict(model, loader: DataLoader, task: str, output_size, device, desc: str, progress: bool,
             hflip: bool = False) -> Iterator[tuple]:
    """Yield ``(index, pred uint8/int, conf_q int, gt, raw_hw)`` per image."""
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        images, n = batch["image"], len(batch["index"])
        sizes = [tuple(output_size) if output_size else batch["raw_hw"][j] for j in range(n)]
        if torch.is_tensor(images) and len(set(sizes)) == 1:
            chunks = [(list(range(n)), images)]
        else:  # images or label sizes differ within the batch: one image at a time
            chunks = [([j], images[j][None]) for j in range(n)]
        for js, x in chunks:
            with torch.inference_mode():
                probs = _probabilities(model, x.to(device), sizes[js[0]] if task == "segmentation" else None, hflip)
            conf, pred = probs.max(1)  # (B[, H, W])
            q, pred = quantize(conf).cpu().numpy(), pred.cpu().numpy()
            for k, j in enumerate(js):
                yield batch["index"][j], pred[k], q[k], batch["gt"][j], batch["raw_hw"][j]


class _Tally:
    """Per-class counts of pass 2: predicted, kept, and (with ground truth) correct."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.predicted, self.kept = np.zeros(k, np.int64), np.zeros(k, np.int64)
        self.eval_all, self.correct_all = np.zeros(k, np.int64), np.zeros(k, np.int64)
        self.eval_kept, self.correct_kept = np.zeros(k, np.int64), np.zeros(k, np.int64)
        self.has_gt = False

    def _count(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(values[values < self.k].ravel().astype(np.int64), minlength=self.k)[: self.k]

    def add(self, pred: np.ndarray, label: np.ndarray, gt: Any) -> None:
        self.predicted += self._count(pred)
        self.kept += self._count(label)
        if gt is None:
            return
        self.has_gt = True
        gt = np.asarray(gt)
        valid = gt != IGNORE_INDEX
        self.eval_all += self._count(pred[valid])
        self.correct_all += self._count(pred[valid & (pred == gt)])
        self.eval_kept += self._count(label[valid])
        self.correct_kept += self._count(label[valid & (label == gt)])

    def all_reduce(self) -> _Tally:
        """Sum the counts over DDP processes (no-op alone); returns ``self``."""
        names = ("predicted", "kept", "eval_all", "correct_all", "eval_kept", "correct_kept")
        *counts, has_gt = distributed.sum_counts(*(getattr(self, n) for n in names), np.array([int(self.has_gt)]))
        for n, c in zip(names, counts):
            setattr(self, n, c)
        self.has_gt = bool(has_gt[0])
        return self


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n / d) if d else None for n, d in zip(num.tolist(), den.tolist())]


def generate_pseudo_labels(
    model: torch.nn.Module,
    data,
    out_dir: str | Path,
    strategy: ThresholdStrategy | None = None,
    options: LabelOptions | None = None,
    *,
    task: Task | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Predict the target training split and write thresholded pseudo labels with a manifest.

    A statistics pass (:func:`_statistics`: confidence histograms, streaming) fits the thresholds, then a
    writing pass (:func:`_write_labels`) applies them.

    Args:
        model: a :class:`~domadapt.methods.DomainAdaptationModule` (its ``predict_probabilities``) or any
            module returning logits / :class:`NetOutput`.
        data: a DataModule (its ``target`` with its ``eval_transform``, like ``predict_dataloader``) or a
            dataset (its own transform).
        out_dir: output folder (see :mod:`domadapt.pseudo.writer` for the layout).
        strategy: thresholds; default BDL's ``ClassPercentile(0.5, cap=0.9)``.
        options: how labels are made and stored (:class:`LabelOptions`); default its defaults.
        task: ``"segmentation"`` / ``"classification"``; default the dataset's.
        checkpoint: a checkpoint to load into ``model`` first (Lightning ``.ckpt`` or a state dict); its
            file hash identifies the model, else the hash of ``model``'s state dict.
        device: where to run; default the model's device.
        progress: show tqdm progress bars.
        verbose: print the per-class summary table.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``, last).
    """
    t0 = time.time()
    strategy = strategy if strategy is not None else ClassPercentile()
    opts = options if options is not None else LabelOptions()
    dataset = _dataset_of(data)
    task = task or dataset.task
    if task != dataset.task:
        raise ValueError(f"generate_pseudo_labels: task {task!r} but {dataset.describe()} is {dataset.task!r}")
    if checkpoint is not None:
        state = read_checkpoint(checkpoint, trusted=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        model_info = {"sha256": fingerprint.file_sha256(checkpoint), "source": str(checkpoint)}
    else:
        model_info = {"sha256": fingerprint.state_sha256(model), "source": "state_dict"}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model_device, was_training = next(model.parameters()).device, model.training
    model.to(device).eval()
    names, _ = writer.sample_names(dataset)
    classes = tuple(dataset.classes)
    k = len(classes) or int(getattr(model, "num_classes", 0) or getattr(getattr(model, "net", None), "num_classes"))
    if task == "segmentation" and k > IGNORE_INDEX:
        raise ValueError(f"generate_pseudo_labels: {k} classes do not fit 8-bit label PNGs (at most {IGNORE_INDEX})")
    _, rank = distributed.world()
    out = writer.start(out_dir) if rank == 0 else Path(out_dir)
    distributed.barrier()  # the old set is gone before any process writes
    shard = ShardSampler(len(dataset))  # every image alone; this process's share under DDP
    loader = DataLoader(_PredictView(dataset), batch_size=opts.batch_size, sampler=shard,
                        num_workers=opts.num_workers, collate_fn=_collate)
    run = _Run(model, loader, task, opts, device, out, out / f".work-{uuid.uuid4().hex[:8]}", progress and rank == 0)
    try:
        hist, rows = _statistics(run, k)
        thresholds = strategy.fit(hist, round=opts.round)  # (K,)
        tally = _write_labels(run, thresholds, rows, list(shard), names, k, rank == 0)
    finally:
        shutil.rmtree(run.work, ignore_errors=True)
        model.to(model_device).train(was_training)

    manifest = _manifest(task, classes, k, dataset, model_info, strategy, opts, thresholds, hist, tally,
                         time.time() - t0)
    distributed.barrier()  # every label file is written
    manifest = writer.finish(out, manifest) if rank == 0 else {"format": writer.FORMAT, **manifest}
    distributed.barrier()  # the set is finished when any process returns
    if verbose and rank == 0:
        print(summary_table(manifest))
    return manifest


@dataclass
class _Run:
    """What both passes share: the model and loader of this process's images, the output and cache folders."""

    model: torch.nn.Module
    loader: DataLoader
    task: str
    options: LabelOptions
    device: torch.device
    out: Path
    work: Path
    progress: bool

    def predict(self, desc: str) -> Iterator[tuple]:
        return _predict(self.model, self.loader, self.task, self.options.output_size, self.device, desc,
                        self.progress, self.options.hflip)


def _statistics(run: _Run, k: int) -> tuple[ConfidenceHistogram, list[tuple]]:
    """Pass 1: predict every image and count per-class confidences (summed over DDP processes).

    Segmentation streams: each prediction is counted, cached to ``run.work`` (``cache="disk"``) and dropped.
    Classification returns the ``(pred, q, gt)`` rows of every image, in dataset order (a few bytes each).
    """
    hist, rows = ConfidenceHistogram(k, run.options.bins), []
    segmentation, cache = run.task == "segmentation", run.options.cache == "disk"
    if segmentation and cache:
        run.work.mkdir()
    for i, pred, q, gt, raw_hw in run.predict("pseudo-labels 1/2"):
        if not segmentation:  # (N,) scalars: counted once after the pass
            rows.append((int(i), int(pred), int(q), gt))
            continue
        hist.update(torch.from_numpy(pred), torch.from_numpy(q / QUANT))
        if cache:
            arrays = {"pred": pred.astype(np.uint8), "q": q.astype(np.uint16), "raw_hw": np.asarray(raw_hw)}
            if gt is not None:
                arrays["gt"] = gt.astype(np.uint8)
            np.savez(run.work / f"{i}.npz", **arrays)
    if segmentation:
        return hist.all_reduce(), []
    rows = [row[1:] for row in sorted(distributed.gather_lists(rows), key=lambda row: row[0])]  # every process's
    if rows:
        hist.update(torch.tensor([p for p, _, _ in rows]), torch.tensor([q for _, q, _ in rows]) / QUANT)
    return hist, rows


def _write_labels(run: _Run, thresholds: np.ndarray, rows: list[tuple], indices: list[int], names: list[str],
                  k: int, main: bool) -> _Tally:
    """Pass 2: ``label[p < thr[label]] = 255``, written per image (segmentation, this process's shard) or as one
    table (classification, by the ``main`` process); returns the counts summed over processes."""
    tally = _Tally(k)
    if run.task != "segmentation":
        pred = np.array([p for p, _, _ in rows], np.int64)
        conf = np.array([q for _, q, _ in rows], np.float64) / QUANT
        label = np.where(conf >= thresholds[pred], pred, IGNORE_INDEX)
        gts = [g for _, _, g in rows]
        tally.add(pred, label, None if all(g is None for g in gts) else
                  np.array([IGNORE_INDEX if g is None else g for g in gts]))
        if main:
            writer.write_table(run.out, label, conf)
        return tally
    for i, pred, q, gt, raw_hw in _second_pass(run, indices):
        label = pred.astype(np.uint8).copy()
        label[q / QUANT < thresholds[pred]] = IGNORE_INDEX
        write_png(writer.label_path(run.out, names[i]), label)
        if gt is not None and label.shape != gt.shape:  # compare at the raw size, as training reads it
            h, w = gt.shape
            label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
            pred = cv2.resize(pred.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        tally.add(np.asarray(pred), label, gt)
    return tally.all_reduce()


def _dataset_of(data) -> DomainDataset:
    if isinstance(data, DomainDataset):
        return data.setup()
    if hasattr(data, "target") and hasattr(data, "eval_transform"):
        ds = copy.copy(data.target)  # same files, the deterministic evaluation transform (predict_dataloader's)
        ds.transform = data.eval_transform
        return ds.setup()
    raise TypeError(f"generate_pseudo_labels: expected a DomainDataset or a DomainAdaptationDataModule, got "
                    f"{type(data).__name__}")


def _second_pass(run: _Run, indices: list[int]) -> Iterator[tuple]:
    if run.options.cache == "recompute":
        yield from run.predict("pseudo-labels 2/2")
        return
    for i in tqdm(indices, desc="pseudo-labels 2/2", disable=not run.progress, leave=False):
        with np.load(run.work / f"{i}.npz") as z:
            yield i, z["pred"].astype(np.int64), z["q"].astype(np.int64), (z["gt"] if "gt" in z else None), \
                tuple(z["raw_hw"])


def _manifest(task, classes, k, dataset, model_info, strategy, opts: LabelOptions, thresholds, hist, tally,
              seconds) -> dict[str, Any]:
    names = list(classes) if len(classes) == k else [str(c) for c in range(k)]
    never = [names[c] for c in range(k) if hist.class_counts[c] == 0]
    unit = "pixels" if task == "segmentation" else "samples"
    total = int(tally.predicted.sum())
    manifest = {
        "task": task, "classes": names, "model": model_info, "strategy": strategy.describe(opts.round),
        "thresholds": [float(t) for t in thresholds], "never_predicted": never, "bins": hist.bins,
        "images": writer.image_list(dataset), "output_size": list(opts.output_size) if opts.output_size else None,
        "unit": unit, "predicted": tally.predicted.tolist(),
        "kept_ratio": {"overall": float(tally.kept.sum() / total) if total else 0.0,
                       "per_class": _ratio(tally.kept, tally.predicted)},
        "precision": None, "cache": opts.cache, "hflip": bool(opts.hflip), "seconds": round_(seconds),
    }
    if tally.has_gt:  # diagnostics only
        manifest["precision"] = {
            "note": "against the target split's ground truth, for reporting only (never used for training)",
            "overall": float(tally.correct_kept.sum() / tally.eval_kept.sum()) if tally.eval_kept.sum() else None,
            "overall_before_threshold": float(tally.correct_all.sum() / tally.eval_all.sum()) if tally.eval_all.sum()
            else None,
            "per_class": _ratio(tally.correct_kept, tally.eval_kept),
            "per_class_before_threshold": _ratio(tally.correct_all, tally.eval_all),
        }
    return manifest


def round_(x: float) -> float:
    return float(f"{x:.3f}")


def summary_table(manifest: dict[str, Any]) -> str:
    """Per-class table of a manifest: share of predictions, threshold, kept ratio, precision of kept."""
    pred = np.asarray(manifest["predicted"], np.float64)
    share = pred / pred.sum() if pred.sum() else pred
    prec = (manifest.get("precision") or {}).get("per_class") or [None] * len(pred)
    rows = [{"class": c, "share": float(s), "threshold": float(t), "kept": kr, "precision": p}
            for c, s, t, kr, p in zip(manifest["classes"], share, manifest["thresholds"],
                                      manifest["kept_ratio"]["per_class"], prec) if s > 0]
    overall = manifest["kept_ratio"]["overall"]
    p_all = (manifest.get("precision") or {}).get("overall")
    rows.append({"class": "all", "share": 1.0, "threshold": None, "kept": overall, "precision": p_all})
    table = format_table(rows, ["class", "share", "threshold", "kept", "precision"],
                         percent={"share", "kept", "precision"})
    head = (f"pseudo labels: {manifest['images']['count']} images, {100 * overall:.1f}% of "
            f"{manifest['unit']} kept ({manifest['strategy']['type']})")
    if manifest["never_predicted"]:
        head += f"; never predicted (threshold 0): {', '.join(manifest['never_predicted'])}"
    return head + "\n" + table
