"""Confidence thresholds for pseudo labels, one interface for every rule.

A pixel (or sample) predicted as class ``c`` with confidence ``p`` is *kept* as a pseudo label when
``p >= thr[c]`` and set to 255 (ignore) otherwise. A :class:`ThresholdStrategy` turns the streaming
statistics of one pass over the target (:class:`~domadapt.pseudo.stats.ConfidenceHistogram`) into
the ``(K,)`` vector ``thr``:

* :class:`GlobalThreshold` — ``thr[c] = value`` (BDL paper: 0.9);
* :class:`ClassPercentile` — ``thr[c] = min(percentile_q(p | ŷ = c), cap)`` (BDL released code:
  per-class median capped at 0.9, i.e. keep at least the confident half of every class); a class
  that was never predicted gets threshold 0 (it has nothing to keep; generation reports it);
* :class:`ProgressiveThreshold` — a global or class-percentile rule whose knob moves linearly from
  ``start`` (strict) to ``end`` (relaxed) over ``rounds`` self-training rounds (CDSSL-style
  progressive sharpening, METHODS.md §4.3).

Strategies are plain classes with typed constructors, so recipes can name them with ``class_path``;
:data:`STRATEGIES` lists the built-in ones by short name for :func:`build_strategy`.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np

from domadapt.class_path import instantiate
from domadapt.pseudo.stats import ConfidenceHistogram


class ThresholdStrategy(ABC):
    """Maps confidence statistics to per-class thresholds."""

    @abstractmethod
    def fit(self, stats: ConfidenceHistogram, round: int = 0) -> np.ndarray:
        """Per-class thresholds.

        Args:
            stats: per-class confidence histograms of the current model on the target split.
            round: 0-based self-training round (only progressive strategies use it).

        Returns:
            ``(K,)`` float64 thresholds in ``[0, 1]``.
        """

    @abstractmethod
    def describe(self, round: int = 0) -> dict[str, Any]:
        """JSON-friendly description (written to the pseudo-label manifest)."""


def _check_unit(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value}")


class GlobalThreshold(ThresholdStrategy):
    """The same threshold for every class (BDL paper, 0.9).

    Args:
        value: confidence a prediction needs to be kept.
    """

    def __init__(self, value: float = 0.9) -> None:
        _check_unit("GlobalThreshold.value", value)
        self.value = float(value)

    def fit(self, stats: ConfidenceHistogram, round: int = 0) -> np.ndarray:
        return np.full(stats.num_classes, self.value, dtype=np.float64)

    def describe(self, round: int = 0) -> dict[str, Any]:
        return {"type": "global", "value": self.value}

    def with_knob(self, value: float) -> GlobalThreshold:
        return GlobalThreshold(value)


class ClassPercentile(ThresholdStrategy):
    """Per-class confidence percentile, optionally capped (BDL released code: median, cap 0.9).

    ``thr[c] = min(percentile_q(p | ŷ = c), cap)``; ``thr[c] = 0`` for a class never predicted.
    With ``percentile = 0.5`` at least the more confident half of each class is kept, and every
    prediction above ``cap`` is kept whatever its class.

    Args:
        percentile: ``q`` in [0, 1]; the fraction of each class's predictions *dropped* (before the cap).
        cap: upper bound of every threshold (``None`` = no cap).
    """

    def __init__(self, percentile: float = 0.5, cap: float | None = 0.9) -> None:
        _check_unit("ClassPercentile.percentile", percentile)
        _check_unit("ClassPercentile.cap", cap)
        self.percentile, self.cap = float(percentile), None if cap is None else float(cap)

    def fit(self, stats: ConfidenceHistogram, round: int = 0) -> np.ndarray:
        thr = stats.percentile(self.percentile)  # (K,), NaN for classes never predicted
        if self.cap is not None:
            thr = np.minimum(thr, self.cap)
        return np.nan_to_num(thr, nan=0.0)

    def describe(self, round: int = 0) -> dict[str, Any]:
        return {"type": "class_percentile", "percentile": self.percentile, "cap": self.cap}

    def with_knob(self, value: float) -> ClassPercentile:
        return ClassPercentile(value, self.cap)


class ProgressiveThreshold(ThresholdStrategy):
    """A rule whose strictness relaxes over self-training rounds.

    In round ``r`` (0-based) the knob is ``start + (end − start) · min(r / (rounds − 1), 1)``: the
    global ``value`` for ``inner="global"``, the per-class ``percentile`` for
    ``inner="class_percentile"`` (with ``cap``). Both relax by *decreasing*, so ``end > start``
    (tightening over rounds) triggers a warning.

    Args:
        start: knob in the first round (strict, e.g. 0.95 or percentile 0.8).
        end: knob from round ``rounds − 1`` on (relaxed, e.g. 0.8 or percentile 0.4).
        rounds: number of rounds over which the knob moves.
        inner: the rule whose knob moves.
        cap: cap of the class-percentile rule.
    """

    def __init__(self, start: float = 0.95, end: float = 0.8, rounds: int = 3,
                 inner: Literal["global", "class_percentile"] = "global", cap: float | None = 0.9) -> None:
        _check_unit("ProgressiveThreshold.start", start)
        _check_unit("ProgressiveThreshold.end", end)
        if rounds < 1:
            raise ValueError(f"ProgressiveThreshold.rounds: expected >= 1, got {rounds}")
        if inner not in ("global", "class_percentile"):
            raise ValueError(f"ProgressiveThreshold.inner: expected 'global' or 'class_percentile', got {inner!r}")
        if end > start:
            warnings.warn(f"ProgressiveThreshold: end ({end}) > start ({start}) makes the thresholds stricter every "
                          "round; progressive sharpening starts strict and relaxes (start > end)", stacklevel=2)
        self.start, self.end, self.rounds, self.inner, self.cap = float(start), float(end), int(rounds), inner, cap

    def knob(self, round: int) -> float:
        """The inner rule's knob in ``round`` (0-based)."""
        t = 1.0 if self.rounds == 1 else min(max(round, 0) / (self.rounds - 1), 1.0)
        return self.start + (self.end - self.start) * t

    def at(self, round: int) -> GlobalThreshold | ClassPercentile:
        """The concrete rule used in ``round``."""
        if self.inner == "global":
            return GlobalThreshold(self.knob(round))
        return ClassPercentile(self.knob(round), self.cap)

    def fit(self, stats: ConfidenceHistogram, round: int = 0) -> np.ndarray:
        return self.at(round).fit(stats)

    def describe(self, round: int = 0) -> dict[str, Any]:
        return {"type": "progressive", "start": self.start, "end": self.end, "rounds": self.rounds,
                "inner": self.inner, "cap": self.cap, "round": round, "applied": self.at(round).describe()}


STRATEGIES: dict[str, type[ThresholdStrategy]] = {
    "global": GlobalThreshold, "class_percentile": ClassPercentile, "progressive": ProgressiveThreshold,
}


def build_strategy(spec: ThresholdStrategy | dict[str, Any] | None) -> ThresholdStrategy:
    """A strategy from a recipe entry.

    Args:
        spec: a strategy; ``{"type": <name in STRATEGIES>, **kwargs}``; ``{"class_path": "pkg.Cls",
            "init_args": {...}}`` (user strategies); ``None`` = ``ClassPercentile(0.5, cap=0.9)``.

    Returns:
        The strategy instance.
    """
    if spec is None:
        return ClassPercentile()
    if isinstance(spec, ThresholdStrategy):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"strategy: expected a mapping with `type` or `class_path`, got {spec!r}")
    spec = dict(spec)
    if "class_path" in spec:
        obj = instantiate(spec, "strategy")
    else:
        kind = spec.pop("type", None)
        if kind not in STRATEGIES:
            raise ValueError(f"strategy.type: expected one of {sorted(STRATEGIES)}, got {kind!r}")
        try:
            obj = STRATEGIES[kind](**spec)
        except TypeError as e:
            raise ValueError(f"strategy ({kind}): {e}") from None
    if not isinstance(obj, ThresholdStrategy):
        raise ValueError(f"strategy: {type(obj).__name__} is not a ThresholdStrategy")
    return obj
