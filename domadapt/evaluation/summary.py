"""Turn one accumulated confusion matrix into the flat metric dict every method logs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from domadapt.data.catalog import PROTOCOLS
from domadapt.evaluation.metrics import accuracy, iou_per_class, mean_class_accuracy, miou, pixel_accuracy


def summarize(cm: torch.Tensor, task: str, class_names: Sequence[str] = (),
              protocols: Sequence[str] = ("19", "16", "13")) -> dict[str, float]:
    """Metrics of one evaluated domain.

    Args:
        cm: ``(K, K)`` confusion matrix (rows = ground truth, columns = prediction).
        task: ``"segmentation"`` -> ``miou`` (+ ``miou16`` / ``miou13`` for 19-class models), ``pixel_acc``
            and ``iou/<class>``; ``"classification"`` -> ``acc`` and ``mean_class_acc``.
        class_names: names for the per-class entries (indices when empty).
        protocols: mIoU protocols to add when ``K == 19``.

    Returns:
        ``{name: value}`` with values in [0, 1] (NaN for classes never seen nor predicted).
    """
    cm = cm.detach().cpu()
    k = cm.shape[0]
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    if task == "classification":
        return {"acc": float(accuracy(cm)), "mean_class_acc": float(mean_class_accuracy(cm))}
    out = {"miou": float(miou(cm)), "pixel_acc": float(pixel_accuracy(cm))}
    if k == 19:
        for p in protocols:
            if p != "19":
                out[f"miou{p}"] = float(miou(cm, PROTOCOLS[p]))
    for name, v in zip(names, iou_per_class(cm)):
        out[f"iou/{name}"] = float(v)
    return out
