"""What ``domadapt test`` leaves in the run directory: ``metrics.json``, plots and a prediction picture.

The report is written from results and predictions, not from the model: the method computes the confusion
matrices and the predictions of a few target samples (through its one prediction path) and hands them over.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from domadapt.evaluation.metrics import iou_per_class
from domadapt.evaluation.pictures import PredictionSamples, write_prediction_picture
from domadapt.evaluation.reports import plot_confusion_matrix, plot_per_class_iou, write_metrics


def run_dir_of(trainer) -> Path:
    """The run directory of ``trainer``: its first logger's ``log_dir``, else ``default_root_dir``.

    Read from the logger itself, not ``trainer.log_dir``: that property is a collective broadcast under
    DDP, and reports are written by rank 0 alone.
    """
    loggers = list(getattr(trainer, "loggers", []) or [])
    log_dir = getattr(loggers[0], "log_dir", None) if loggers else None
    return Path(log_dir or trainer.default_root_dir)


def write_test_report(run_dir: Path, results: dict[str, Any], class_names: list[str], task: str, global_step: int,
                      samples: PredictionSamples | None = None) -> tuple[Path, np.ndarray | None]:
    """Write the test report into ``run_dir``.

    ``metrics.json`` (all domains), per-class IoU / confusion-matrix PNGs per domain, and
    ``predictions_target.png`` from ``samples`` (:func:`~domadapt.evaluation.pictures.write_prediction_picture`).

    Args:
        run_dir: the run directory.
        results: ``{domain: {"summary": dict, "confmat": (K, K) tensor}}``.
        class_names: name per class id.
        task: ``"classification"`` or ``"segmentation"``.
        global_step: recorded in ``metrics.json``.
        samples: target test samples with their predictions, or ``None`` (no picture).

    Returns:
        ``(path of metrics.json, the prediction picture (H, W, 3) uint8 or None)``.
    """
    flat = {f"test/{d}/{k}": v for d, r in results.items() for k, v in r["summary"].items()}
    extra = {"confusion_matrix": {d: r["confmat"].tolist() for d, r in results.items()},
             "classes": class_names, "task": task, "global_step": global_step}
    path = write_metrics(run_dir, flat, extra)
    for d, r in results.items():
        cm = r["confmat"]
        if task == "segmentation":
            plot_per_class_iou(iou_per_class(cm).tolist(), class_names, run_dir / f"test_{d}_per_class_iou.png",
                               title=f"per-class IoU on {d}")
        plot_confusion_matrix(cm, class_names, run_dir / f"test_{d}_confusion_matrix.png")
    picture = None
    if samples is not None:
        try:  # a qualitative picture must not cost the metrics of a finished evaluation
            picture = write_prediction_picture(samples, class_names, task, run_dir / "predictions_target.png")
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            warnings.warn(f"predictions_target.png not written: {type(e).__name__}: {e}")
    return path, picture
