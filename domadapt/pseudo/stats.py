"""Streaming per-class confidence statistics for pseudo-label thresholds.

BDL's released code sorts every confidence of every target pixel to take per-class medians
(``2 × 2975 × 512 × 1024`` float64 values, about 25 GB; METHODS.md §1.3(b)). A histogram per class
gives the same percentile to within one bin with memory that does not grow with the dataset:
``num_classes × bins`` int64 counters (19 × 1000 × 8 B = 152 kB), summed across DDP ranks like any
other count.

Definitions (``c`` a class, ``B`` the number of bins, ``q`` a percentile in [0, 1]):

* pixel/sample ``i`` with predicted class ``ŷ_i`` and confidence ``p_i = max_c softmax_c`` falls in
  bin ``b_i = min(floor(p_i · B), B − 1)`` of class ``ŷ_i``;
* the exact reference (BDL): ``v = sort({p_i : ŷ_i = c})``, ``thr_c = v[r]`` with
  ``r = min(round(q · |v|), |v| − 1)``;
* the histogram estimate is the upper edge ``(b* + 1) / B`` of the bin ``b*`` holding the element of
  rank ``r`` (the first bin whose cumulative count exceeds ``r``), so
  ``0 < estimate − v[r] ≤ 1 / B``.
"""

from __future__ import annotations

import numpy as np
import torch


class ConfidenceHistogram:
    """Per-class histograms of max-softmax confidence over the predictions of that class.

    Args:
        num_classes: number of classes ``K``.
        bins: number of equal-width bins over ``[0, 1]``.

    Attributes:
        counts: ``(K, bins)`` int64 tensor; ``counts[c, b]`` = predictions of class ``c`` whose
            confidence lies in ``[b / bins, (b + 1) / bins)`` (the last bin includes 1.0).
    """

    def __init__(self, num_classes: int, bins: int = 1000) -> None:
        if num_classes < 1 or bins < 1:
            raise ValueError(f"ConfidenceHistogram: expected num_classes >= 1 and bins >= 1, got {num_classes}, {bins}")
        self.num_classes, self.bins = int(num_classes), int(bins)
        self.counts = torch.zeros(self.num_classes, self.bins, dtype=torch.int64)

    # ------------------------------------------------------------------ accumulation
    def bin_of(self, confidence: torch.Tensor) -> torch.Tensor:
        """Bin index ``min(floor(p · bins), bins − 1)`` of each confidence (same shape, int64)."""
        return (confidence.double() * self.bins).floor().long().clamp_(0, self.bins - 1)

    @torch.no_grad()
    def update(self, pred: torch.Tensor | np.ndarray, confidence: torch.Tensor | np.ndarray) -> None:
        """Add predictions.

        Args:
            pred: predicted classes, any shape, values in ``[0, K)``; other values (e.g. 255) are skipped.
            confidence: max-softmax confidence in ``[0, 1]``, same shape as ``pred``.
        """
        pred = torch.as_tensor(pred).reshape(-1).long().cpu()
        conf = torch.as_tensor(confidence).reshape(-1).cpu()
        if pred.shape != conf.shape:
            raise ValueError(f"ConfidenceHistogram.update: pred has {pred.numel()} values, confidence {conf.numel()}")
        valid = (pred >= 0) & (pred < self.num_classes)
        flat = pred[valid] * self.bins + self.bin_of(conf[valid])  # (M,)
        self.counts += torch.bincount(flat, minlength=self.num_classes * self.bins).view(self.num_classes, self.bins)

    def merge(self, other: ConfidenceHistogram) -> ConfidenceHistogram:
        """Add the counts of ``other`` (same classes and bins) in place; returns ``self``."""
        if (other.num_classes, other.bins) != (self.num_classes, self.bins):
            raise ValueError(f"ConfidenceHistogram.merge: shapes differ ({self.num_classes}x{self.bins} vs "
                             f"{other.num_classes}x{other.bins})")
        self.counts += other.counts
        return self

    def __iadd__(self, other: ConfidenceHistogram) -> ConfidenceHistogram:
        return self.merge(other)

    def all_reduce(self) -> ConfidenceHistogram:
        """Sum the counts over DDP ranks (no-op without an initialised process group)."""
        from domadapt import distributed

        self.counts = torch.from_numpy(distributed.sum_counts(self.counts.numpy())[0])
        return self

    # ------------------------------------------------------------------ queries
    @property
    def class_counts(self) -> np.ndarray:
        """``(K,)`` number of predictions per class."""
        return self.counts.sum(1).numpy()

    def percentile(self, q: float) -> np.ndarray:
        """Per-class ``q``-percentile of confidence, to within one bin above the exact value.

        Args:
            q: percentile in ``[0, 1]`` (0.5 = median).

        Returns:
            ``(K,)`` float64 thresholds; ``NaN`` for classes that were never predicted.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"ConfidenceHistogram.percentile: expected q in [0, 1], got {q}")
        counts = self.counts.numpy()
        n = counts.sum(1)  # (K,)
        rank = np.minimum(np.round(q * n), np.maximum(n - 1, 0))  # (K,) 0-based rank of the element
        cum = counts.cumsum(1)  # (K, bins)
        first = (cum > rank[:, None]).argmax(1)  # (K,) first bin whose cumulative count passes the rank
        out = (first + 1) / self.bins
        return np.where(n > 0, out, np.nan)

    def fraction_at_least(self, thresholds: np.ndarray) -> np.ndarray:
        """``(K,)`` fraction of each class's predictions in bins at or above ``thresholds`` (``NaN`` if none).

        Exact for thresholds on bin edges (what :meth:`percentile` returns); otherwise the bin holding
        the threshold counts as below it.
        """
        counts = self.counts.numpy()
        first_kept = np.ceil(np.asarray(thresholds, dtype=np.float64) * self.bins - 1e-9).astype(np.int64)  # (K,)
        kept = np.array([counts[c, max(b, 0):].sum() for c, b in enumerate(first_kept)])
        n = counts.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, kept / np.maximum(n, 1), np.nan)

    def __repr__(self) -> str:
        return f"ConfidenceHistogram(num_classes={self.num_classes}, bins={self.bins}, total={int(self.counts.sum())})"


def exact_percentile(values: np.ndarray, q: float) -> float:
    """Reference: ``sort(values)[min(round(q · n), n − 1)]`` (BDL's released rule), ``NaN`` if empty."""
    v = np.sort(np.asarray(values).reshape(-1))
    if v.size == 0:
        return float("nan")
    return float(v[int(min(np.round(q * v.size), v.size - 1))])
