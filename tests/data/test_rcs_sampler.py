"""Rare-class sampling (domadapt.data.rare_class): DAFormer's class probabilities, classes drawn with them, images
drawn only among those above min_pixels, resumable and rank-split draws, excluded classes, bad arguments."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from domadapt.data.rare_class import RareClassIndex, RareClassSampler, rare_class_probs


def daformer_probs(class_pixels: np.ndarray, temperature: float) -> dict[int, float]:
    """NumPy transcription of DAFormer's get_rcs_class_probs (lhoyer/DAFormer @e6f6e04,
    mmseg/datasets/uda_dataset.py:17-39) on per-image stats as tools/convert_datasets/gta.py:40-47 writes them
    (one dict per image, only classes with n > 0)."""
    stats = [{c: int(n) for c, n in enumerate(row) if n > 0} for row in class_pixels]
    overall: dict[int, int] = {}
    for s in stats:
        for c, n in s.items():
            overall[c] = overall.get(c, 0) + n
    overall = dict(sorted(overall.items(), key=lambda item: item[1]))
    freq = np.array(list(overall.values()), dtype=np.float64)
    freq = 1 - freq / freq.sum()
    x = freq / temperature
    e = np.exp(x - x.max())  # torch.softmax subtracts the max too
    return dict(zip(overall, e / e.sum()))


def imbalanced_counts(seed: int = 0, n: int = 200) -> np.ndarray:
    """(N, 6) per-image pixels: class 0 everywhere and large, class 5 never, the others ever rarer."""
    rng = np.random.default_rng(seed)
    scale = np.array([60_000, 20_000, 8_000, 5_000, 4_000, 0])
    present = rng.random((n, 6)) < np.array([1.0, 0.8, 0.5, 0.2, 0.05, 0.0])
    return (rng.integers(1, 3, (n, 6)) * scale * present).astype(np.int64)


@pytest.mark.parametrize("temperature", [0.01, 0.05, 1.0])
def test_class_probabilities_match_daformer(temperature):
    counts = imbalanced_counts()
    ref = daformer_probs(counts, temperature)
    got = rare_class_probs(counts, temperature)
    assert got[5] == 0 and 5 not in ref  # never seen: never drawn, as DAFormer leaves it out
    np.testing.assert_allclose([got[c] for c in ref], list(ref.values()), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.sum(), 1.0)
    assert np.argmax(got) == np.argmin(np.where(counts.sum(0) > 0, counts.sum(0), np.inf))  # rarest seen class first
    s = RareClassSampler(counts, temperature, min_pixels=3000)
    np.testing.assert_allclose(s.class_probs, got, rtol=1e-12)  # every seen class has an image above 3000


def test_classes_are_drawn_with_their_probabilities():
    counts = imbalanced_counts()
    s = RareClassSampler(counts, temperature=0.05, min_pixels=3000, num_samples=20_000, seed=3)
    p = s.class_probs
    drawn = np.array([i.rare_class for i in s])
    freq = np.bincount(drawn, minlength=6) / len(drawn)
    tol = 5 * np.sqrt(p * (1 - p) / len(drawn)) + 1e-12  # 5 standard errors per class
    assert (np.abs(freq - p) <= tol).all(), (freq, p)
    uniform = np.where(counts.sum(0) > 0, 1 / 5, 0.0)  # uniform over the seen classes is far outside it
    assert (np.abs(uniform - p) > 4 * tol).any()
    assert p.max() > 0.4 and p[0] < 0.01  # T = 0.05 strongly favours the rare classes over class 0


def test_images_are_drawn_only_among_those_above_min_pixels_and_uniformly():
    counts = np.zeros((12, 3), np.int64)
    counts[:, 0] = 10_000
    counts[[1, 4, 7, 10], 2] = [3001, 5000, 3001, 9000]  # eligible for class 2
    counts[[2, 5], 2] = 3000  # exactly min_pixels: not eligible (DAFormer keeps pixels > min_pixels)
    counts[[3, 6], 2] = 10
    counts[[0, 8], 1] = 4000
    s = RareClassSampler(counts, temperature=1.0, min_pixels=3000, num_samples=8000, seed=0)  # every class drawn
    draws = list(s)
    for c in range(3):
        images = np.array([int(i) for i in draws if i.rare_class == c])
        assert set(images.tolist()) == set(np.flatnonzero(counts[:, c] > 3000).tolist())
        per_image = np.bincount(images, minlength=12)[counts[:, c] > 3000]
        expected = len(images) / len(per_image)
        assert np.abs(per_image - expected).max() <= 5 * np.sqrt(expected)  # uniform among the eligible
    assert [len(m) for m in s.members] == [12, 2, 4]


def test_a_resumed_sampler_continues_the_same_draw():
    counts = imbalanced_counts()
    s = RareClassSampler(counts, 0.01, 3000, num_samples=300, seed=11)
    s.set_epoch(2)
    passes = [[(int(i), i.seed, i.rare_class) for i in s] for _ in range(2)]
    assert passes[0] != passes[1]
    r = RareClassSampler(counts, 0.01, 3000, num_samples=300, seed=11)
    r.resume(2, passes=1, skip=123)  # the state a killed run is restored to
    assert [(int(i), i.seed, i.rare_class) for i in r] == passes[1][123:]
    r.set_epoch(3)
    assert [(int(i), i.seed, i.rare_class) for i in r] != passes[0]
    r.set_epoch(2)
    assert [(int(i), i.seed, i.rare_class) for i in r] == passes[0]  # (seed, epoch, pass) fixes the draw
    other = RareClassSampler(counts, 0.01, 3000, num_samples=300, seed=12)
    other.set_epoch(2)
    assert [(int(i), i.seed, i.rare_class) for i in other] != passes[0]


def test_two_ranks_split_the_one_process_draw():
    counts = imbalanced_counts()
    one = [(int(i), i.seed, i.rare_class) for i in RareClassSampler(counts, num_samples=100, seed=5)]
    ranks = [[(int(i), i.seed, i.rare_class) for i in RareClassSampler(counts, num_samples=100, seed=5,
                                                                      num_replicas=2, rank=r)] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 50
    assert [ranks[j % 2][j // 2] for j in range(100)] == one  # positions of one global draw
    odd = RareClassSampler(counts, num_samples=101, seed=5, num_replicas=2, rank=1)
    assert len(odd) == 51 and odd.total_size == 102  # 101 over 2 ranks: 102 draws, as the other samplers do


def test_index_keeps_its_class_and_seed_through_pickling():
    i = RareClassIndex(7, 123, 4)
    j = pickle.loads(pickle.dumps(i))
    assert (int(j), j.seed, j.rare_class, type(j)) == (7, 123, 4, RareClassIndex)


def test_a_class_without_an_image_above_min_pixels_is_excluded_with_a_warning():
    counts = np.array([[5000, 100, 0], [6000, 0, 4000], [7000, 200, 3500]])
    with pytest.warns(UserWarning, match=r"classes \[1\] have pixels but no image with more than 3000"):
        s = RareClassSampler(counts, 0.01, 3000)
    assert s.excluded_classes == [1] and s.class_probs[1] == 0
    ref = daformer_probs(counts, 0.01)  # the other two keep DAFormer's ratio (f over every counted pixel)
    np.testing.assert_allclose(s.class_probs[2] / s.class_probs[0], ref[2] / ref[0], rtol=1e-9)
    assert s.describe()["excluded_classes"] == [1] and s.describe()["images_per_class"] == [3, 0, 2]


@pytest.mark.parametrize("kw,match", [
    ({"temperature": 0.0}, r"RareClassSampler.temperature: expected T > 0, got 0.0"),
    ({"temperature": -1}, r"RareClassSampler.temperature: expected T > 0, got -1"),
    ({"min_pixels": -1}, r"RareClassSampler.min_pixels: expected >= 0, got -1"),
    ({"min_pixels": 10**6}, r"RareClassSampler.min_pixels: no image has more than 1000000 pixels"),
    ({"class_pixels": np.zeros((3, 4))}, r"RareClassSampler.class_pixels: no labelled pixel"),
    ({"class_pixels": np.ones(4)}, r"RareClassSampler.class_pixels: expected an \(N, K\) array"),
])
def test_bad_arguments_are_one_line_errors(kw, match):
    args = {"class_pixels": imbalanced_counts(n=20), **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # min_pixels = 10**6 excludes every class before it fails
        with pytest.raises(ValueError, match=match):
            RareClassSampler(**args)
    with pytest.raises(ValueError, match=r"rare_class_probs.temperature: expected T > 0, got 0"):
        rare_class_probs(np.ones(3), 0)
