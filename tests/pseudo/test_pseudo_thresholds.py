"""Threshold strategies against NumPy references; progressive relaxation and its warning; recipe specs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from domadapt.pseudo.stats import ConfidenceHistogram
from domadapt.pseudo.thresholds import (
    STRATEGIES,
    ClassPercentile,
    GlobalThreshold,
    ProgressiveThreshold,
    ThresholdStrategy,
    build_strategy,
)

K = 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, 10_000)  # class 3 is never predicted
    # class 0 confident (median ~0.97 > cap), class 1 medium, class 2 low
    conf = np.select([pred == 0, pred == 1], [rng.uniform(0.94, 1.0, pred.size), rng.uniform(0.5, 0.9, pred.size)],
                     rng.uniform(0.1, 0.5, pred.size))
    hist = ConfidenceHistogram(K, 1000)
    hist.update(pred, conf)
    return pred, conf, hist


def test_global_threshold(data):
    _, _, hist = data
    np.testing.assert_array_equal(GlobalThreshold(0.9).fit(hist), [0.9] * K)


def test_class_percentile_caps_and_zeroes_empty_classes(data):
    pred, conf, hist = data
    thr = ClassPercentile(0.5, cap=0.9).fit(hist)
    med = [np.sort(conf[pred == c])[int(np.round(0.5 * (pred == c).sum()))] for c in range(3)]
    assert med[0] > 0.9 and thr[0] == 0.9  # capped
    for c in (1, 2):
        assert 0 < thr[c] - med[c] <= 1e-3  # per-class median within one bin
    assert thr[3] == 0.0  # never predicted
    uncapped = ClassPercentile(0.5, cap=None).fit(hist)
    assert 0 < uncapped[0] - med[0] <= 1e-3


def test_class_percentile_keeps_about_the_top_share(data):
    pred, conf, hist = data
    for q in (0.2, 0.5, 0.8):
        thr = ClassPercentile(q, cap=None).fit(hist)
        kept = np.mean(conf[pred == 2] >= thr[2])
        assert abs(kept - (1 - q)) < 0.01


def test_progressive_relaxes_over_rounds(data):
    _, _, hist = data
    prog = ProgressiveThreshold(start=0.95, end=0.75, rounds=3)
    values = [prog.fit(hist, round=r)[0] for r in range(5)]
    np.testing.assert_allclose(values, [0.95, 0.85, 0.75, 0.75, 0.75])
    pct = ProgressiveThreshold(start=0.8, end=0.4, rounds=2, inner="class_percentile", cap=None)
    np.testing.assert_allclose(pct.fit(hist, round=1), ClassPercentile(0.4, cap=None).fit(hist))
    assert (pct.fit(hist, 0)[:3] > pct.fit(hist, 1)[:3]).all()  # stricter first
    assert pct.describe(1)["applied"] == {"type": "class_percentile", "percentile": 0.4, "cap": None}


def test_progressive_warns_when_it_would_tighten():
    with pytest.warns(UserWarning, match="stricter every round"):
        ProgressiveThreshold(start=0.8, end=0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ProgressiveThreshold(start=0.95, end=0.8)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_listed_strategy_builds_from_a_spec_and_describes_itself(name, data):
    _, _, hist = data
    strategy = build_strategy({"type": name})
    assert isinstance(strategy, STRATEGIES[name])
    thr = strategy.fit(hist)
    assert thr.shape == (K,) and ((thr >= 0) & (thr <= 1)).all()
    assert strategy.describe()["type"] == name


def test_build_strategy_class_path_default_and_errors():
    s = build_strategy({"class_path": "domadapt.pseudo.thresholds.GlobalThreshold", "init_args": {"value": 0.7}})
    assert isinstance(s, GlobalThreshold) and s.value == 0.7
    d = build_strategy(None)
    assert isinstance(d, ClassPercentile) and (d.percentile, d.cap) == (0.5, 0.9)
    with pytest.raises(ValueError, match="strategy.type"):
        build_strategy({"type": "median"})
    with pytest.raises(ValueError, match="class_path"):
        build_strategy({"class_path": "nope.Nothing"})
    with pytest.raises(ValueError, match="GlobalThreshold.value"):
        build_strategy({"type": "global", "value": 1.5})
    with pytest.raises(ValueError, match="strategy \\(global\\)"):
        build_strategy({"type": "global", "valu": 0.5})
    assert issubclass(ProgressiveThreshold, ThresholdStrategy)
