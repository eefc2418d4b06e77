"""Evaluation reports: ``metrics.json``, per-class IoU and confusion-matrix plots, prediction grids, tables.

Every file is written atomically (temporary file + rename, :mod:`domadapt.io`). Plots use
matplotlib's object API (``Figure`` + Agg canvas), never ``pyplot``, so they neither need a display
nor change the backend of a notebook that imports domadapt.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from domadapt.data.catalog import CS19_PALETTE, colorize
from domadapt.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize
from domadapt.evaluation.metrics import iou_per_class
from domadapt.io import atomic_path, write_json, write_png

PathLike = str | os.PathLike

METRIC_PREFIXES = ("miou", "iou", "acc", "mean_class_acc", "pixel_acc")
"""Column names (after the last ``/``) starting with one of these are shown as percentages."""


def _jsonable(v: Any) -> Any:
    """Tensors/arrays -> (nested) lists, NumPy scalars -> Python, NaN/inf -> ``None`` (valid JSON)."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def write_metrics(
    run_dir: PathLike,
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    confmat: torch.Tensor | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    filename: str = "metrics.json",
) -> Path:
    """Write ``run_dir/metrics.json`` atomically.

    Layout::

        {"metrics": {...}, "class_names": [...], "per_class_iou": [...],
         "confusion_matrix": [[...]], <extra keys>}

    ``class_names``, ``per_class_iou`` (from the matrix) and ``confusion_matrix`` (rows = ground
    truth) appear only when ``confmat`` / ``class_names`` are given. NaN (undefined IoU) is written
    as ``null`` so the file is strict JSON.

    Args:
        run_dir: output folder (created if missing).
        metrics: e.g. ``MetricSet.compute()``; tensor values become lists / numbers.
        extra: more top-level entries (checkpoint, dataset, stage ...).
        confmat: ``(K, K)`` confusion matrix, e.g. ``MetricSet.confmat``.
        class_names: ``K`` class names.
        filename: file name inside ``run_dir``.

    Returns:
        The path written.
    """
    doc: dict[str, Any] = {"metrics": _jsonable(dict(metrics))}
    if class_names is not None:
        doc["class_names"] = list(class_names)
    if confmat is not None:
        if class_names is not None and len(class_names) != len(confmat):
            raise ValueError(f"class_names: {len(class_names)} names for a {len(confmat)}-class confusion matrix")
        doc["per_class_iou"] = _jsonable(iou_per_class(confmat))
        doc["confusion_matrix"] = _jsonable(confmat)
    for k, v in (extra or {}).items():
        if k in doc:
            raise ValueError(f"extra: key {k!r} collides with a reserved metrics.json entry")
        doc[k] = _jsonable(v)
    path = Path(run_dir) / filename
    write_json(path, doc)
    return path


def save_figure(fig: Figure, path: PathLike) -> Path:
    """Render ``fig`` and write it as a PNG atomically; returns ``path``."""
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def plot_per_class_iou(
    iou: Sequence[float], class_names: Sequence[str], path: PathLike, title: str | None = None
) -> Path:
    """Horizontal bar chart of per-class IoU (fractions, shown in %); NaN classes are labelled "n/a".

    Returns:
        ``path`` (a PNG).
    """
    values = np.asarray(iou, dtype=np.float64).reshape(-1)
    if len(values) != len(class_names):
        raise ValueError(f"class_names: {len(class_names)} names for {len(values)} IoU values")
    fig = Figure(figsize=(7, 0.3 * len(values) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(values))
    ax.barh(y, np.nan_to_num(values * 100, nan=0.0), color="tab:blue")
    for yi, v in zip(y, values):
        ax.text(1 if np.isnan(v) else v * 100 + 1, yi, "n/a" if np.isnan(v) else f"{v * 100:.1f}", va="center")
    ax.set_yticks(y, list(class_names))
    ax.invert_yaxis()  # first class on top
    ax.set_xlim(0, 110)
    ax.set_xlabel("IoU (%)")
    if title is None:
        title = f"per-class IoU (mIoU {np.nanmean(values) * 100:.1f})" if np.isfinite(values).any() else "per-class IoU"
    ax.set_title(title)
    return save_figure(fig, path)


def plot_confusion_matrix(
    cm: torch.Tensor | np.ndarray, class_names: Sequence[str], path: PathLike, normalize: bool = True
) -> Path:
    """Confusion-matrix heat map (rows = ground truth, columns = prediction).

    Args:
        cm: ``(K, K)`` counts.
        class_names: ``K`` names (tick labels are drawn for ``K <= 40``).
        path: PNG to write.
        normalize: divide each row by its ground-truth count (rows without pixels stay 0).
    """
    m = np.asarray(cm.detach().cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    k = len(m)
    if m.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"cm: expected ({len(class_names)}, {len(class_names)}) for the class names, got {m.shape}")
    if normalize:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(max(4, 0.45 * k + 2), max(4, 0.45 * k + 1.5)))
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if k <= 40:
        ax.set_xticks(range(k), list(class_names), rotation=90)
        ax.set_yticks(range(k), list(class_names))
    if k <= 20:  # cell values stay legible only for small matrices
        for i, j in np.ndindex(k, k):
            ax.text(j, i, f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}", ha="center", va="center",
                    fontsize=6, color="white" if m[i, j] > 0.5 * m.max() else "black")
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    return save_figure(fig, path)


def _to_hwc_uint8(image: Any, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return denormalize(image, mean, std)  # (3, H, W) normalised -> (H, W, 3) uint8
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images: expected (3, H, W) tensors or (H, W, 3) uint8 arrays, got {a.dtype} {a.shape}")
    return a


def plot_predictions(
    images: Sequence[Any] | torch.Tensor,
    preds: Sequence[Any] | torch.Tensor,
    targets: Sequence[Any] | torch.Tensor,
    path: PathLike,
    palette: Sequence[tuple[int, int, int]] = CS19_PALETTE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    gap: int = 4,
) -> Path:
    """Grid PNG, one row per sample: image | prediction | ground truth (palette colours, 255 black).

    Args:
        images: ``(N, 3, H, W)`` normalised tensors (undone with ``mean`` / ``std``) or ``(H, W, 3)``
            uint8 arrays; an image of another size than its mask is resized to the mask.
        preds: ``(N, H, W)`` predicted train ids.
        targets: ``(N, H, W)`` ground-truth train ids (255 = ignore).
        path: PNG to write.
        palette: colour per class id.
        mean: normalisation mean of ``images``.
        std: normalisation std of ``images``.
        gap: white pixels between panels.
    """
    if not len(images) == len(preds) == len(targets) or len(images) == 0:
        raise ValueError(f"plot_predictions: got {len(images)} images, {len(preds)} preds, {len(targets)} targets")
    rows = []
    for image, pred, target in zip(images, preds, targets):
        p, t = (np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x) for x in (pred, target))
        if p.shape != t.shape or p.ndim != 2:
            raise ValueError(f"preds/targets: expected equal (H, W) masks, got {p.shape} and {t.shape}")
        img = _to_hwc_uint8(image, mean, std)
        if img.shape[:2] != t.shape:
            img = np.asarray(Image.fromarray(img).resize((t.shape[1], t.shape[0]), Image.BILINEAR))
        sep = np.full((t.shape[0], gap, 3), 255, np.uint8)
        rows.append(np.concatenate([img, sep, colorize(p, palette), sep, colorize(t, palette)], axis=1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:  # samples may differ in size: pad right, separate rows by a white band
        r = np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        padded.append(r)
    write_png(path, np.concatenate(padded, axis=0)[:-gap])
    return Path(path)


def _is_metric(column: str, percent: Collection[str] | Literal["auto"]) -> bool:
    if percent == "auto":
        return column.rsplit("/", 1)[-1].startswith(METRIC_PREFIXES)
    return column in percent


def format_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    percent: Collection[str] | Literal["auto"] = "auto",
) -> str:
    """Plain-text aligned table.

    Cell formatting: a float in a *metric* column is a fraction shown as a percentage with one
    decimal (``0.4567`` -> ``45.7``); other floats use ``.4g``; ``None``/NaN/missing -> ``n/a``;
    anything else ``str()``. Numeric columns are right-aligned, text columns left-aligned.

    Args:
        rows: one mapping per row.
        columns: keys to show, in order (also the header).
        percent: metric column names, or ``"auto"``: columns whose last ``/``-part starts with one of
            :data:`METRIC_PREFIXES` (``miou``, ``iou``, ``acc``, ``mean_class_acc``, ``pixel_acc``).

    Returns:
        Header, a dashed rule, and one line per row, joined by newlines (no trailing newline).
    """
    def cell(v: Any, col: str) -> str:
        if isinstance(v, torch.Tensor | np.generic):
            v = v.item()
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        if isinstance(v, float):
            return f"{v * 100:.1f}" if _is_metric(col, percent) else f"{v:.4g}"
        return str(v)

    cells = [[cell(r.get(c), c) for c in columns] for r in rows]
    numeric = [all(isinstance(r.get(c), int | float | np.number | torch.Tensor | None) for r in rows) for c in columns]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    return "\n".join(out)
