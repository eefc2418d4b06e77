"""ConfidenceHistogram: percentiles within one bin of the exact sorted value, merging, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domadapt.pseudo.stats import ConfidenceHistogram, exact_percentile


def naive_percentile(values: np.ndarray, q: float) -> float:
    v = np.sort(values)
    return float(v[min(int(np.round(q * len(v))), len(v) - 1)])


def random_predictions(rng, n: int, k: int, empty: int | None = None):
    pred = rng.integers(0, k, n)
    if empty is not None:
        pred[pred == empty] = (empty + 1) % k
    conf = rng.beta(5, 2, n)  # skewed towards 1 like softmax maxima
    return pred, conf


@pytest.mark.parametrize("bins", [10, 100, 1000])
@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_percentile_within_one_bin_of_exact(bins, q):
    rng = np.random.default_rng(bins)
    k = 5
    pred, conf = random_predictions(rng, 20_000, k, empty=3)
    hist = ConfidenceHistogram(k, bins)
    for chunk in np.array_split(np.arange(len(pred)), 7):  # streaming: several updates
        hist.update(torch.from_numpy(pred[chunk]), torch.from_numpy(conf[chunk]))
    est = hist.percentile(q)
    for c in range(k):
        values = conf[pred == c]
        if c == 3:
            assert values.size == 0 and np.isnan(est[c])
            continue
        exact = naive_percentile(values, q)
        assert 0.0 < est[c] - exact <= 1.0 / bins + 1e-12, (c, est[c], exact)
        assert exact_percentile(values, q) == exact


def test_counts_match_numpy_histogram_and_skip_ignore():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (4, 8, 8))
    pred[0, 0] = 255  # ignored pixels are not counted
    conf = rng.random((4, 8, 8))
    conf[1, 1, 1] = 1.0  # the last bin includes 1.0
    hist = ConfidenceHistogram(3, bins=20)
    hist.update(pred, conf)
    for c in range(3):
        ref, _ = np.histogram(conf[pred == c], bins=20, range=(0.0, 1.0))
        assert hist.counts[c].tolist() == ref.tolist()
    assert hist.class_counts.sum() == pred.size - 8


def test_merge_equals_one_histogram_over_all_data():
    rng = np.random.default_rng(1)
    pred, conf = random_predictions(rng, 5000, 4)
    a, b, whole = ConfidenceHistogram(4, 50), ConfidenceHistogram(4, 50), ConfidenceHistogram(4, 50)
    a.update(pred[:1234], conf[:1234])
    b.update(pred[1234:], conf[1234:])
    whole.update(pred, conf)
    a += b
    assert torch.equal(a.counts, whole.counts)
    np.testing.assert_array_equal(a.percentile(0.5), whole.percentile(0.5))


def test_all_reduce_without_process_group_is_identity():
    hist = ConfidenceHistogram(2, 10)
    hist.update([0, 1, 1], [0.05, 0.5, 0.95])
    before = hist.counts.clone()
    assert torch.equal(hist.all_reduce().counts, before)


def test_fraction_at_least_on_bin_edges():
    rng = np.random.default_rng(2)
    pred, conf = random_predictions(rng, 3000, 3)
    hist = ConfidenceHistogram(3, 100)
    hist.update(pred, conf)
    thr = np.array([0.5, 0.8, 0.0])
    expected = [np.mean(conf[pred == c] >= thr[c]) for c in range(3)]
    np.testing.assert_allclose(hist.fraction_at_least(thr), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        ConfidenceHistogram(0)
    hist = ConfidenceHistogram(2, 10)
    with pytest.raises(ValueError, match="percentile"):
        hist.percentile(1.5)
    with pytest.raises(ValueError, match="pred has 2 values"):
        hist.update([0, 1], [0.5])
    with pytest.raises(ValueError, match="shapes differ"):
        hist.merge(ConfidenceHistogram(3, 10))
