"""Qualitative pictures: target predictions after ``test`` and BDL translation samples.

* :func:`write_prediction_picture` — ``predictions_target.png`` of the test report: target test images with
  the model's predictions (:class:`PredictionSamples`) and the ground truth (segmentation: colour masks side
  by side; classification: a row of images titled with predicted / true class); :func:`log_image` sends it to
  TensorBoard loggers.
* :func:`plot_translation_samples` — source | translated pairs, one per row (``samples.png`` of
  :func:`~domadapt.pipeline.translate.translate_dataset`).

Figures use matplotlib's object API on an Agg canvas (no ``pyplot``, no display, the backend of a
notebook is left alone); files are written atomically (:func:`domadapt.io.write_png`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from domadapt.data.catalog import CS13_CLASSES, CS16_CLASSES, CS19_PALETTE, PROTOCOLS
from domadapt.data.transforms import denormalize
from domadapt.evaluation.reports import plot_predictions
from domadapt.io import write_png

PathLike = str | os.PathLike


def palette_for(class_names: Sequence[str]) -> tuple[tuple[int, int, int], ...]:
    """Cityscapes colours for a class list: the 16- / 13-class protocol subsets keep each class's colour.

    Any other list (19 Cityscapes classes, ToyCity, a user's classes) uses the 19-class palette in
    order; ids past 19 are drawn black by :func:`~domadapt.data.catalog.colorize`.

    Args:
        class_names: the model's classes, in train-id order.

    Returns:
        One RGB colour per train id.
    """
    names = tuple(class_names)
    for subset, protocol in ((CS16_CLASSES, "16"), (CS13_CLASSES, "13")):
        if names == subset:
            return tuple(CS19_PALETTE[i] for i in PROTOCOLS[protocol])
    return CS19_PALETTE


def normalisation_of(dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` the dataset's transform normalises with; ``(0, 1)`` for the default ``[0, 1]`` scaling.

    Args:
        dataset: a :class:`~domadapt.data.base.DomainDataset` (its ``transform`` may be an ``Augment``).

    Returns:
        Per-channel mean and std in ``[0, 1]`` units, as :func:`~domadapt.data.transforms.denormalize` takes them.
    """
    transform = getattr(dataset, "transform", None)
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    if mean is None or std is None:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return tuple(mean), tuple(std)


def first_samples(dataset, n: int) -> list[dict[str, torch.Tensor]]:
    """The first ``min(n, len(dataset))`` samples of a dataset, each with a batch dimension of 1.

    Samples are kept apart (not stacked) because segmentation images may differ in size.

    Args:
        dataset: any dataset of sample dicts (its own transform applies).
        n: how many.

    Returns:
        ``[{"image": (1, 3, H, W), "mask": (1, H, W) | "label": (1,), ...}, ...]``.
    """
    return [{k: v[None] for k, v in dataset[i].items()} for i in range(min(n, len(dataset)))]


@dataclass
class PredictionSamples:
    """A few evaluated samples: what the prediction picture draws.

    Attributes:
        images: ``(3, H, W)`` normalised images, as the evaluation transform gave them.
        predictions: ``(H', W')`` predicted masks (at the label's size) or ``()`` class ids.
        targets: ``(H', W')`` masks or ``()`` labels.
        mean: normalisation mean of the images (``[0, 1]`` units).
        std: normalisation std of the images.
    """

    images: list[torch.Tensor]
    predictions: list[torch.Tensor]
    targets: list[torch.Tensor]
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)


def figure_array(fig: Figure) -> np.ndarray:
    """Render a figure on an Agg canvas: ``(H, W, 3)`` uint8 of exactly ``figsize * dpi`` pixels."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def plot_classification_predictions(
    images: torch.Tensor | Sequence[np.ndarray],
    preds: Sequence[int] | torch.Tensor,
    targets: Sequence[int] | torch.Tensor,
    class_names: Sequence[str],
    path: PathLike,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    panel: float = 2.0,
    dpi: int = 100,
) -> np.ndarray:
    """One row of images titled ``pred: <name>`` / ``true: <name>`` (green when right, red when wrong).

    Args:
        images: ``(N, 3, H, W)`` normalised tensors (undone with ``mean`` / ``std``) or ``(H, W, 3)`` uint8.
        preds: ``N`` predicted class ids.
        targets: ``N`` true class ids.
        class_names: name per class id.
        path: PNG to write.
        mean: normalisation mean of ``images``.
        std: normalisation std of ``images``.
        panel: inches per image (the figure is ``N * panel`` wide, ``1.25 * panel`` high).
        dpi: pixels per inch.

    Returns:
        The picture, ``(round(1.25 * panel * dpi), round(N * panel * dpi), 3)`` uint8 (also written to ``path``).
    """
    preds, targets = [int(p) for p in preds], [int(t) for t in targets]
    if not len(images) == len(preds) == len(targets) or len(images) == 0:
        raise ValueError(f"plot_classification_predictions: got {len(images)} images, {len(preds)} preds, "
                         f"{len(targets)} targets")
    fig = Figure(figsize=(panel * len(preds), 1.25 * panel), dpi=dpi)
    axes = np.atleast_1d(fig.subplots(1, len(preds)))
    for ax, image, p, t in zip(axes, images, preds, targets):
        ax.imshow(denormalize(image, mean, std) if isinstance(image, torch.Tensor) else np.asarray(image))
        ax.set_title(f"pred: {class_names[p]}\ntrue: {class_names[t]}", fontsize=9,
                     color="tab:green" if p == t else "tab:red")
        ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.78, wspace=0.1)
    picture = figure_array(fig)
    write_png(path, picture)
    return picture


def write_prediction_picture(samples: PredictionSamples, class_names: Sequence[str], task: str, path: PathLike,
                             max_width: int = 512) -> np.ndarray:
    """Draw samples with their predictions and ground truth into ``path``.

    Segmentation rows are image | prediction | ground truth in the Cityscapes palette (255 black, see
    :func:`~domadapt.evaluation.reports.plot_predictions`), masks wider than ``max_width`` subsampled by an integer
    stride; classification is one titled row (:func:`plot_classification_predictions`).

    Args:
        samples: the images, predictions and targets.
        class_names: name per class id.
        task: ``"classification"`` or ``"segmentation"``.
        path: PNG to write.
        max_width: widest segmentation panel in pixels.

    Returns:
        The picture, ``(H, W, 3)`` uint8.
    """
    if task == "segmentation":
        strides = [max(1, -(-m.shape[-1] // max_width)) for m in samples.targets]  # ceil(W / max_width)
        plot_predictions(samples.images, [p[::k, ::k] for p, k in zip(samples.predictions, strides)],
                         [m[::k, ::k] for m, k in zip(samples.targets, strides)], path,
                         palette=palette_for(class_names), mean=samples.mean, std=samples.std)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    return plot_classification_predictions(samples.images, samples.predictions, samples.targets, class_names, path,
                                           mean=samples.mean, std=samples.std)


def log_image(loggers: Sequence, tag: str, picture: np.ndarray, step: int) -> None:
    """``add_image`` on each TensorBoard logger in ``loggers`` (others are skipped)."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, picture, step, dataformats="HWC")


def plot_translation_samples(
    sources: Sequence[np.ndarray], translated: Sequence[np.ndarray], path: PathLike, gap: int = 4
) -> Path:
    """Grid PNG, one row per sample: source | translated.

    Args:
        sources: ``(H, W, 3)`` uint8 source images; each is resized (bicubic) to its translation's
            size, the resolution the generator saw.
        translated: ``(H', W', 3)`` uint8 translations, same order.
        path: PNG to write.
        gap: white pixels between panels and rows.

    Returns:
        ``path``.
    """
    if len(sources) != len(translated) or not sources:
        raise ValueError(f"plot_translation_samples: got {len(sources)} sources and {len(translated)} translations")
    rows = []
    for src, out in zip(sources, translated):
        src, out = np.asarray(src, np.uint8), np.asarray(out, np.uint8)
        if src.shape[:2] != out.shape[:2]:
            src = np.asarray(Image.fromarray(src).resize((out.shape[1], out.shape[0]), Image.BICUBIC))
        rows.append(np.concatenate([src, np.full((out.shape[0], gap, 3), 255, np.uint8), out], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_png(path, np.concatenate(rows, axis=0)[:-gap])
    return Path(path)
