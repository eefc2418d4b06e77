"""Samplers for self-training: class-balanced pseudo-labelled target draws, mixed with source at ratio ρ.

The imbalanced-sampling component of *our interpretation* of CDSSL (METHODS.md §4.3 (3); the paper
body was not available): self-training on pseudo labels collapses onto the classes the model already
predicts well, so target samples are drawn *class-balanced by their pseudo label*, and the share ρ of
target samples among source samples grows over the self-training rounds.

* Each target sample has one *sampling class* ``y_i``: its pseudo label (classification) or, for
  segmentation, the rarest class present in its pseudo-label mask (:func:`rarest_class`, DAFormer's
  rare-class sampling reduced to one class per image). ``y_i = 255`` (nothing kept) is never drawn.
* Class ``c`` with ``n_c`` samples is drawn with probability ``π_c ∝ n_c^(1 − balance)`` over the
  classes present (``balance = 1``: uniform over classes; ``0``: uniform over samples). A class that
  is never predicted has ``π_c = 0`` and is listed in :attr:`PseudoLabelSampler.missing_classes`.
* An epoch of ``n`` target draws gives class ``c`` the quota ``floor(n · π_c)`` (the remainder goes to
  classes drawn by ``π``), and each class serves its quota from a fresh random permutation of its
  samples, cycling only when the quota exceeds the class — so frequent classes are not repeated and
  rare ones are repeated as little as possible.
* :class:`MixedDomainSampler` draws ``n_t = round(ρ · n)`` target and ``n − n_t`` source indices
  (source without replacement, cycling permutations) into one shuffled list over
  ``ConcatDataset([source, target])``; ``ρ`` moves linearly from ``ratio`` to ``ratio_end`` over
  ``rounds`` rounds (round ``r``: ``ρ_r = ratio + (ratio_end − ratio) · min(r / (rounds − 1), 1)``).

Distributed: every rank builds the same global list from ``(seed, epoch, pass)`` and keeps positions
``rank, rank + R, …`` — disjoint shares of one draw, so ``R`` processes see exactly what one process
would, together. Both samplers are :class:`~domadapt.data.resumable.ResumableRandomSampler` (hence
:class:`~torch.utils.data.DistributedSampler`) subclasses: Lightning uses them as they are instead of
wrapping them in another distributed sampler and calls :meth:`set_epoch` every epoch, every index
carries its augmentation seed, and a resumed run continues the draw where it stopped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from domadapt.data.resumable import ResumableRandomSampler
from domadapt.structures import IGNORE_INDEX


def rarest_class(class_pixels: np.ndarray, min_pixels: int = 1) -> np.ndarray:
    """Per image, the present class that is rarest over the whole set (its sampling class).

    Args:
        class_pixels: ``(N, K)`` kept pseudo-label pixels of each class in each image.
        min_pixels: a class counts as present in an image from this many pixels on.

    Returns:
        ``(N,)`` int64: ``argmin_{c present in i} Σ_j class_pixels[j, c]``; 255 for an image without
        any present class (nothing kept).
    """
    counts = np.asarray(class_pixels, dtype=np.int64)
    present = counts >= max(min_pixels, 1)  # (N, K)
    frequency = counts.sum(0).astype(np.float64)  # (K,) pixels of each class over the set
    score = np.where(present, frequency[None, :], np.inf)  # (N, K)
    out = score.argmin(1)
    return np.where(present.any(1), out, IGNORE_INDEX).astype(np.int64)


def ratio_at(ratio: float, ratio_end: float | None, rounds: int, round: int) -> float:
    """``ρ`` in self-training round ``round`` (0-based): linear from ``ratio`` to ``ratio_end`` over ``rounds``."""
    if ratio_end is None or rounds <= 1:
        return float(ratio if ratio_end is None else ratio_end)
    t = min(max(round, 0) / (rounds - 1), 1.0)
    return float(ratio + (ratio_end - ratio) * t)


class PseudoLabelSampler(ResumableRandomSampler):
    """Class-balanced draws (with as few repeats as possible) of pseudo-labelled target samples.

    Args:
        labels: ``(N,)`` sampling class of each sample (pseudo label, or :func:`rarest_class` for
            segmentation); 255 = nothing kept, never drawn.
        num_classes: ``K``; default ``max(label) + 1``.
        num_samples: draws per epoch over all ranks; default the number of drawable samples.
        balance: exponent in ``π_c ∝ n_c^(1 − balance)``, in ``[0, 1]`` (1 = uniform over classes).
        seed: base seed; the epoch's draw uses ``(seed, epoch)``.
        num_replicas: processes sharing the draw (default: the process group's world size, else 1).
        rank: this process (default: its rank in the process group, else 0).

    Attributes:
        class_probs: ``(K,)`` ``π``, 0 for classes without samples.
        missing_classes: classes ``c < K`` with no sample (never predicted / nothing kept).
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, num_classes: int | None = None,
                 num_samples: int | None = None, balance: float = 1.0, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"PseudoLabelSampler.balance: expected a value in [0, 1], got {balance}")
        valid = labels != IGNORE_INDEX
        if (labels[valid] < 0).any():
            raise ValueError("PseudoLabelSampler.labels: expected class ids >= 0 or 255 (nothing kept)")
        k = int(num_classes) if num_classes is not None else int(labels[valid].max() + 1) if valid.any() else 0
        if valid.any() and labels[valid].max() >= k:
            raise ValueError(f"PseudoLabelSampler.labels: class {int(labels[valid].max())} >= num_classes {k}")
        self.labels, self.num_classes, self.balance = labels, k, float(balance)
        self.members = [np.flatnonzero(labels == c) for c in range(k)]  # samples of each class
        counts = np.array([len(m) for m in self.members], dtype=np.float64)  # (K,)
        weights = np.where(counts > 0, counts ** (1.0 - self.balance), 0.0)
        self.class_probs = weights / weights.sum() if weights.sum() > 0 else weights
        self.missing_classes = [c for c in range(k) if counts[c] == 0]
        self.num_drawable = int(valid.sum())
        super().__init__(0, seed, num_replicas, rank)
        self._set_size(self.num_drawable if num_samples is None else int(num_samples))

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """The global draw of one pass: :meth:`draw` of ``total_size`` indices."""
        return self.draw(self.total_size, rng)

    # ------------------------------------------------------------------ drawing
    def class_quotas(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(K,)`` draws per class: ``floor(n · π_c)`` plus the remainder spread by ``π``."""
        quota = np.floor(n * self.class_probs + 1e-9).astype(np.int64)  # 1e-9: n·n_c/N is exact, not 599.99…
        rest = n - int(quota.sum())
        if rest > 0:
            present = np.flatnonzero(self.class_probs > 0)
            p = self.class_probs[present] / self.class_probs[present].sum()
            extra = rng.choice(present, size=rest, replace=rest > len(present), p=p)
            np.add.at(quota, extra, 1)
        return quota

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` sample indices, class-balanced, shuffled (the global draw of one epoch)."""
        if n == 0:
            return np.zeros(0, np.int64)
        if self.num_drawable == 0:
            raise ValueError("PseudoLabelSampler: no sample has a pseudo label (every label is 255); nothing to draw")
        parts = []
        for c, q in enumerate(self.class_quotas(n, rng)):
            if q == 0:
                continue
            m = self.members[c]
            reps = math.ceil(q / len(m))
            parts.append(np.concatenate([rng.permutation(m) for _ in range(reps)])[:q])
        return rng.permutation(np.concatenate(parts))

    def describe(self) -> dict:
        """JSON-friendly summary: class probabilities, missing classes, sizes."""
        return {"num_classes": self.num_classes, "balance": self.balance, "drawable": self.num_drawable,
                "class_probs": [round(float(p), 6) for p in self.class_probs], "missing_classes": self.missing_classes,
                "total_size": self.total_size}


class MixedDomainSampler(PseudoLabelSampler):
    """Source and class-balanced pseudo-labelled target indices at ratio ρ, over ``ConcatDataset([source, target])``.

    Indices ``0..num_source-1`` are source samples, ``num_source + i`` target sample ``i``.

    Args:
        num_source: number of source samples (all sources together).
        target_labels: ``(N_t,)`` sampling class of each target sample (255 = not drawable).
        ratio: ``ρ`` in ``[0, 1]``, the share of target indices (in round 0 when ``ratio_end`` is set).
        ratio_end: ``ρ`` from round ``rounds − 1`` on (``None`` = constant ``ratio``).
        rounds: rounds over which ``ρ`` moves.
        round: current self-training round (0-based).
        num_samples: indices per epoch over all ranks; default ``num_source + N_t``.
        num_classes, balance, seed, num_replicas, rank: see :class:`PseudoLabelSampler`.

    Attributes:
        ratio_now: the ``ρ`` in use (0 when no target sample has a pseudo label, with a warning).
    """

    def __init__(self, num_source: int, target_labels: Sequence[int] | np.ndarray, ratio: float = 0.5,
                 ratio_end: float | None = None, rounds: int = 1, round: int = 0, num_samples: int | None = None,
                 num_classes: int | None = None, balance: float = 1.0, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        for name, value in (("ratio", ratio), ("ratio_end", ratio_end)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"MixedDomainSampler.{name}: expected ρ in [0, 1], got {value}")
        if rounds < 1 or round < 0:
            raise ValueError(f"MixedDomainSampler: expected rounds >= 1 and round >= 0, got {rounds}, {round}")
        if ratio_end is not None and ratio_end < ratio:
            warnings.warn(f"MixedDomainSampler: ratio_end ({ratio_end}) < ratio ({ratio}) shrinks the target share "
                          "every round; our CDSSL reading grows it", stacklevel=2)
        super().__init__(target_labels, num_classes, None, balance, seed, num_replicas, rank)
        self.num_source = int(num_source)
        self.ratio, self.ratio_end, self.rounds, self.round = float(ratio), ratio_end, int(rounds), int(round)
        self.ratio_now = ratio_at(self.ratio, ratio_end, self.rounds, self.round)
        if self.ratio_now > 0 and self.num_drawable == 0:
            warnings.warn("MixedDomainSampler: no target sample has a pseudo label; drawing source only (ρ = 0)",
                          stacklevel=2)
            self.ratio_now = 0.0
        if self.ratio_now < 1 and self.num_source == 0:
            raise ValueError(f"MixedDomainSampler.num_source: 0 source samples but ρ = {self.ratio_now} < 1")
        self._set_size(self.num_source + len(self.labels) if num_samples is None else int(num_samples))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` indices: ``round(ρ · n)`` target (class-balanced) and the rest source, shuffled."""
        n_t = int(round(self.ratio_now * n))
        n_s = n - n_t
        reps = math.ceil(n_s / self.num_source) if n_s else 0
        source = np.concatenate([rng.permutation(self.num_source) for _ in range(reps)])[:n_s] if reps else \
            np.zeros(0, np.int64)
        target = super().draw(n_t, rng) + self.num_source
        return rng.permutation(np.concatenate([source, target]))

    def describe(self) -> dict:
        return {**super().describe(), "num_source": self.num_source, "ratio": self.ratio, "ratio_end": self.ratio_end,
                "rounds": self.rounds, "round": self.round, "ratio_now": self.ratio_now}
