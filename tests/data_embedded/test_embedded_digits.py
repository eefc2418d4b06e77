"""EmbeddedDigits: real sklearn handwriting, five synthetic domains, fixed disjoint splits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from domadapt.data import digit_domains
from domadapt.data.digit_domains import DIGIT_DOMAINS, SPLIT_SIZES, build_digit_domain, digit_split
from domadapt.data.embedded import EmbeddedDigits
from domadapt.data.transforms import Augment


@pytest.fixture(scope="module")
def built():
    """Every domain and split, built once through the dataset class (fills the test cache)."""
    return {(d, s): EmbeddedDigits(d, s).setup() for d in DIGIT_DOMAINS for s in ("train", "test")}


def test_split_is_disjoint_complete_and_stratified():
    split, labels = digit_split(), load_digits().target
    assert not set(split["train"]) & set(split["test"])
    assert np.array_equal(np.sort(np.concatenate([split["train"], split["test"]])), np.arange(len(labels)))
    frac = np.bincount(labels[split["test"]], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(frac - digit_domains.TEST_FRACTION) < 0.01)


@pytest.mark.parametrize("domain", DIGIT_DOMAINS)
def test_every_domain_builds_valid_splits(built, domain):
    split, true_labels = digit_split(), load_digits().target
    for s in ("train", "test"):
        ds = built[(domain, s)]
        n = SPLIT_SIZES[s]
        assert len(ds) == n and ds.images.shape == (n, 32, 32, 3) and ds.images.dtype == np.uint8
        assert ds.images.std() > 20  # not blank
        # Labels are the real labels of the handwriting each image was made from, and that
        # handwriting comes from the split's own pool (so test writing never appears in train).
        assert np.array_equal(ds.labels, true_labels[ds.source_index])
        assert np.isin(ds.source_index, split[s]).all()
        counts = np.bincount(ds.labels, minlength=10)
        assert counts.min() > 0.08 * n and counts.max() < 0.12 * n
        image, label = ds.load_raw(3)
        assert image.shape == (32, 32, 3) and isinstance(label, int) and 0 <= label <= 9
        sample = ds[3]
        assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
        assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
        assert sample["label"].item() == ds.labels[3]


def test_test_images_show_held_out_handwriting(built):
    """Undo the upscaling and match against all 1,797 scans: test images match test-pool writing."""
    scans = load_digits().images.reshape(len(load_digits().images), -1)  # (1797, 64) in 0..16
    test_pool = set(digit_split()["test"])
    ds = built[("digits", "test")]
    small = np.stack([cv2.resize(im[..., 0], (8, 8), interpolation=cv2.INTER_AREA) for im in ds.images[:300]])
    small = small.reshape(300, -1).astype(np.float32) * 16 / 255
    nearest = np.argmin(((small[:, None] - scans[None]) ** 2).sum(-1), axis=1)
    assert np.mean([i in test_pool for i in nearest]) > 0.8  # chance level is 0.2
    assert np.mean(nearest == ds.source_index[:300]) > 0.5


def test_photo_domain_is_the_mnist_m_blend():
    """|patch - digit * 255| per channel: ink 0 gives the photo patch, ink 1 its negative."""
    zeros, ones = np.zeros((6, 32, 32), np.float32), np.ones((6, 32, 32), np.float32)
    patch = digit_domains._photo(zeros, np.random.default_rng(7))
    negative = digit_domains._photo(ones, np.random.default_rng(7))
    np.testing.assert_allclose(patch + negative, 255.0)
    assert patch.std(axis=(1, 2)).mean() > 5  # real photo content, not a flat colour


def _features(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    grey = x.mean(-1)
    high = np.abs(grey - np.stack([cv2.GaussianBlur(g, (0, 0), 1.5) for g in grey]))
    return np.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), (x.max(-1) - x.min(-1)).mean((1, 2)),
                     high.mean((1, 2)), grey[:, :4].mean((1, 2))], 1)


@pytest.mark.parametrize("domain", [d for d in DIGIT_DOMAINS if d != "digits"])
def test_each_domain_is_distinguishable_from_the_source(built, domain):
    """A domain gap exists: 5 image statistics separate the domain from ``digits`` (> 90 %)."""
    a, b = built[("digits", "train")].images[:600], built[(domain, "train")].images[:600]
    x, y = np.concatenate([_features(a), _features(b)]), np.r_[np.zeros(600), np.ones(600)]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    order = np.random.default_rng(0).permutation(1200)
    clf = LogisticRegression(max_iter=500).fit(x[order[:800]], y[order[:800]])
    assert clf.score(x[order[800:]], y[order[800:]]) > 0.9


def test_generation_is_deterministic():
    a = build_digit_domain("digits-noisy", "test", 16, count=50)
    b = build_digit_domain("digits-noisy", "test", 16, count=50)
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_size_and_transform():
    ds = EmbeddedDigits("digits-colour", "test", size=24, transform=Augment(resize=(28, 28)))
    sample = ds[0]
    assert ds.images.shape == (1000, 24, 24, 3)
    assert sample["image"].shape == (3, 28, 28) and sample["image"].dtype == torch.float32
    assert sample["label"].dtype == torch.long
    unlabelled = EmbeddedDigits("digits-colour", "test", size=24, with_labels=False, limit=10)
    assert len(unlabelled) == 10 and "label" not in unlabelled[0]


@pytest.mark.parametrize("kwargs", [{"domain": "mnist"}, {"split": "val"}, {"size": 4}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="EmbeddedDigits"):
        EmbeddedDigits(**kwargs)
