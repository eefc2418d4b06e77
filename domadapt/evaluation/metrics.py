"""Confusion-matrix metrics: mIoU (19/16/13 protocols), pixel accuracy, top-1 and mean-class accuracy.

Everything is derived from ONE ``(K, K)`` int64 confusion matrix per evaluated domain
(rows = ground truth, columns = prediction). The matrix is a torchmetrics state reduced by ``sum``,
so the value computed under DDP equals the value of a single process that saw all the data
(METHODS.md §0.1: one 19×19 matrix accumulated over all 500 Cityscapes val images).

With ``TP_c = cm[c, c]``, ``FP_c = Σ_r cm[r, c] - TP_c`` and ``FN_c = Σ_p cm[c, p] - TP_c``:

* ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` (NaN when the denominator is 0: class never seen nor predicted)
* ``mIoU = nanmean_c IoU_c`` over the chosen class ids (a protocol of :data:`~domadapt.data.catalog.PROTOCOLS`)
* ``pixel accuracy = top-1 accuracy = trace(cm) / sum(cm)``
* ``mean class accuracy = mean_{c : Σ_p cm[c, p] > 0} TP_c / Σ_p cm[c, p]`` (balanced accuracy)

The pure functions accept a ``torch.Tensor`` or a ``numpy.ndarray``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from domadapt.data.catalog import PROTOCOLS
from domadapt.structures import IGNORE_INDEX, Task

ConfMat = torch.Tensor | np.ndarray


def confusion_matrix_counts(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Confusion-matrix counts of one batch.

    Args:
        preds: class indices with the shape of ``target`` (integer dtype), or logits/scores with one
            more dimension at position 1 (``(N, K)`` / ``(N, K, H, W)``), reduced by argmax over dim 1.
        target: ground-truth class ids ``(N,)`` / ``(N, H, W)``; ``ignore_index`` pixels are skipped.
        num_classes: ``K``.
        ignore_index: target value to skip.

    Returns:
        ``(K, K)`` int64 counts, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes disagree, or a target / prediction id lies outside ``[0, K)`` (the
            message names the value).
    """
    if preds.ndim == target.ndim + 1:
        if preds.shape[1] != num_classes:
            raise ValueError(f"preds: logits have {preds.shape[1]} classes in dim 1, expected {num_classes}")
        preds = preds.argmax(dim=1)
    elif preds.is_floating_point():
        raise ValueError(
            f"preds: expected integer class indices shaped like target {tuple(target.shape)} "
            f"or logits (N, K, ...), got floating point {tuple(preds.shape)}"
        )
    if preds.shape != target.shape:
        raise ValueError(f"preds: shape {tuple(preds.shape)} does not match target {tuple(target.shape)}")
    t = target.reshape(-1).long()  # (P,)
    p = preds.reshape(-1).long()  # (P,)
    keep = t != ignore_index
    t, p = t[keep], p[keep]
    for name, v in (("target", t), ("preds", p)):
        bad = (v < 0) | (v >= num_classes)
        if bool(bad.any()):
            raise ValueError(
                f"{name}: class id {int(v[bad][0])} outside [0, {num_classes}) "
                f"(num_classes={num_classes}, ignore_index={ignore_index})"
            )
    # bincount over the flattened (gt, pred) pair: exact integer counts, deterministic.
    counts = torch.bincount(num_classes * t + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


class ConfusionMatrix(Metric):
    """Accumulated ``(K, K)`` confusion matrix (rows = ground truth, columns = prediction).

    Args:
        num_classes: ``K``.
        ignore_index: target value whose pixels are skipped.

    Shape:
        ``update(preds, target)``: ``preds`` ``(N,)`` / ``(N, H, W)`` indices or ``(N, K)`` /
        ``(N, K, H, W)`` logits; ``target`` ``(N,)`` / ``(N, H, W)``. ``compute()`` -> ``(K, K)`` int64.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.confmat += confusion_matrix_counts(preds, target, self.num_classes, self.ignore_index)

    def compute(self) -> torch.Tensor:
        return self.confmat.clone()


# --- pure functions of a confusion matrix -------------------------------------------------------
def _f64(cm: ConfMat) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(cm) if not isinstance(cm, torch.Tensor) else cm)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"confusion matrix: expected a square (K, K) matrix, got shape {tuple(t.shape)}")
    return t.detach().to("cpu", torch.float64)


def iou_per_class(cm: ConfMat) -> ConfMat:
    """``IoU_c = TP / (TP + FP + FN)``; NaN where the class is neither present nor predicted.

    Returns:
        ``(K,)`` float64, a tensor for a tensor input and an ndarray for an ndarray input.
    """
    m = _f64(cm)
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    return iou if isinstance(cm, torch.Tensor) else iou.numpy()


def miou(cm: ConfMat, classes: Sequence[int] | None = None) -> float:
    """Mean IoU over ``classes`` (all when ``None``), ignoring NaN classes; NaN if all are NaN.

    Args:
        cm: ``(K, K)`` confusion matrix.
        classes: class ids to average, e.g. ``PROTOCOLS["16"]`` on a 19-class matrix.
    """
    iou = torch.as_tensor(iou_per_class(_f64(cm)))
    if classes is not None:
        idx = list(classes)
        bad = [c for c in idx if not 0 <= c < len(iou)]
        if bad:
            raise ValueError(f"classes: ids {bad} outside [0, {len(iou)})")
        iou = iou[idx]
    return float(torch.nanmean(iou))


def pixel_accuracy(cm: ConfMat) -> float:
    """``trace(cm) / sum(cm)`` (NaN for an empty matrix)."""
    m = _f64(cm)
    total = m.sum()
    return float(m.trace() / total) if total > 0 else float("nan")


def accuracy(cm: ConfMat) -> float:
    """Top-1 accuracy ``trace(cm) / sum(cm)`` (same formula as :func:`pixel_accuracy`)."""
    return pixel_accuracy(cm)


def mean_class_accuracy(cm: ConfMat) -> float:
    """Mean over classes present in the ground truth of ``cm[c, c] / Σ_p cm[c, p]`` (balanced accuracy)."""
    m = _f64(cm)
    support = m.sum(1)
    present = support > 0
    if not bool(present.any()):
        return float("nan")
    return float((m.diagonal()[present] / support[present]).mean())


# --- the set logged per domain ------------------------------------------------------------------
class MetricSet(Metric):
    """All metrics of one evaluated domain, from one accumulated confusion matrix.

    ``compute()`` returns a flat ``dict[str, float]`` (fractions in ``[0, 1]``, NaN when undefined)
    meant to be logged as ``val/<domain>/<key>``:

    * segmentation: ``miou`` (all ``K`` classes), ``miou16`` / ``miou13`` (protocols, 19-class
      matrices only), ``pixel_acc``, ``iou/<class name>``;
    * classification: ``acc`` (top-1), ``mean_class_acc``.

    The raw matrix stays available as ``self.confmat`` for reports
    (:func:`domadapt.evaluation.reports.write_metrics`).

    Args:
        task: ``"segmentation"`` or ``"classification"``.
        num_classes: ``K``.
        class_names: ``K`` names for per-class keys; default ``class_0 .. class_{K-1}``.
        protocols: names in :data:`~domadapt.data.catalog.PROTOCOLS` to report as ``miou<name>``
            (``"19"`` is ``miou`` itself). ``None`` = ``("16", "13")`` for 19-class segmentation,
            none otherwise. Protocols need ``num_classes == 19``.
        ignore_index: target value to skip.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        task: Task,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        protocols: Sequence[str] | None = None,
        ignore_index: int = IGNORE_INDEX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("segmentation", "classification"):
            raise ValueError(f"task: expected 'segmentation' or 'classification', got {task!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        names = tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(num_classes))
        if len(names) != num_classes:
            raise ValueError(f"class_names: {len(names)} names for num_classes={num_classes}")
        if protocols is None:
            protocols = ("16", "13") if task == "segmentation" and num_classes == 19 else ()
        for p in protocols:
            if p not in PROTOCOLS:
                raise ValueError(f"protocols: unknown protocol {p!r}, expected one of {sorted(PROTOCOLS)}")
            if num_classes != 19:
                raise ValueError(f"protocols: {p!r} selects from the 19-class matrix, got num_classes={num_classes}")
        self.task, self.num_classes, self.ignore_index = task, num_classes, ignore_index
        self.class_names, self.protocols = names, tuple(protocols)
        self.add_state("confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.confmat += confusion_matrix_counts(preds, target, self.num_classes, self.ignore_index)

    def compute(self) -> dict[str, float]:
        cm = self.confmat
        if self.task == "classification":
            return {"acc": accuracy(cm), "mean_class_acc": mean_class_accuracy(cm)}
        out = {"miou": miou(cm)}
        for p in self.protocols:
            out["miou" if p == "19" else f"miou{p}"] = miou(cm, PROTOCOLS[p])
        out["pixel_acc"] = pixel_accuracy(cm)
        for name, v in zip(self.class_names, iou_per_class(cm).tolist()):
            out[f"iou/{name}"] = v
        return out
