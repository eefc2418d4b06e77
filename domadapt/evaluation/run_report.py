"""What ``domadapt test`` leaves in the run directory: ``metrics.json``, plots and a prediction picture."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from domadapt.evaluation.metrics import iou_per_class
from domadapt.evaluation.pictures import write_prediction_picture
from domadapt.evaluation.reports import plot_confusion_matrix, plot_per_class_iou, write_metrics


def run_dir_of(module) -> Path:
    """The run directory: the first logger's ``log_dir``, else ``trainer.default_root_dir``.

    Read from the logger itself, not ``trainer.log_dir``: that property is a collective broadcast under
    DDP, and reports are written by rank 0 alone.
    """
    trainer = module.trainer
    loggers = list(getattr(trainer, "loggers", []) or [])
    log_dir = getattr(loggers[0], "log_dir", None) if loggers else None
    return Path(log_dir or trainer.default_root_dir)


def write_test_report(module, results: dict[str, Any], num_pictures: int = 4) -> Path:
    """Write the test report into the run directory.

    ``metrics.json`` (all domains), per-class IoU / confusion-matrix PNGs per domain, and
    ``predictions_target.png``: the first ``num_pictures`` target test samples with their predictions
    (:func:`~domadapt.evaluation.pictures.write_prediction_picture`).

    Args:
        module: the evaluated LightningModule (gives the run directory, task and class names).
        results: ``{domain: {"summary": dict, "confmat": (K, K) tensor}}``.
        num_pictures: target samples drawn with their predictions (0: none).

    Returns:
        Path of ``metrics.json``.
    """
    out = run_dir_of(module)
    names = list(module.class_names())
    flat = {f"test/{d}/{k}": v for d, r in results.items() for k, v in r["summary"].items()}
    extra = {"confusion_matrix": {d: r["confmat"].tolist() for d, r in results.items()},
             "classes": names, "task": module.task, "global_step": module.global_step}
    path = write_metrics(out, flat, extra)
    for d, r in results.items():
        cm = r["confmat"]
        if module.task == "segmentation":
            plot_per_class_iou(iou_per_class(cm).tolist(), names, out / f"test_{d}_per_class_iou.png",
                               title=f"per-class IoU on {d}")
        plot_confusion_matrix(cm, names, out / f"test_{d}_confusion_matrix.png")
    try:  # a qualitative picture must not cost the metrics of a finished evaluation
        write_prediction_picture(module, num_pictures)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        warnings.warn(f"predictions_target.png not written: {type(e).__name__}: {e}")
    return path
