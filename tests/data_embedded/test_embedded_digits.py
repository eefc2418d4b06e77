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


TRAIN_HEAD = 600  # train images generated per domain by the direct generator (the full 5,000 once)


@pytest.fixture(scope="module")
def built():
    """Per domain: the full test split through the dataset class (fills the test cache) and a
    600-image train split from the generator itself (same code path, a smaller count)."""
    out = {(d, "test"): EmbeddedDigits(d, "test").setup() for d in DIGIT_DOMAINS}
    out.update({(d, "train"): build_digit_domain(d, "train", count=TRAIN_HEAD) for d in DIGIT_DOMAINS})
    return out


def test_split_is_disjoint_complete_and_stratified():
    split, labels = digit_split(), load_digits().target
    assert not set(split["train"]) & set(split["test"])
    assert np.array_equal(np.sort(np.concatenate([split["train"], split["test"]])), np.arange(len(labels)))
    frac = np.bincount(labels[split["test"]], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(frac - digit_domains.TEST_FRACTION) < 0.01)


@pytest.mark.parametrize("domain", DIGIT_DOMAINS)
def test_every_domain_builds_valid_splits(built, domain):
    split, true_labels = digit_split(), load_digits().target
    ds, head = built[(domain, "test")], built[(domain, "train")]
    n = SPLIT_SIZES["test"]
    assert len(ds) == n and ds.images.shape == (n, 32, 32, 3) and ds.images.dtype == np.uint8
    for images, labels, index, pool, tol in (
        (ds.images, ds.labels, ds.source_index, split["test"], 0.02),  # cycles the pool: near-balanced
        (head["images"], head["labels"], head["source_index"], split["train"], 0.05),  # part of one cycle
    ):
        assert images.std() > 20  # not blank
        # Labels are the real labels of the handwriting each image was made from, and that
        # handwriting comes from the split's own pool (so test writing never appears in train).
        assert np.array_equal(labels, true_labels[index])
        assert np.isin(index, pool).all()
        counts = np.bincount(labels, minlength=10)
        assert np.abs(counts / len(labels) - 0.1).max() < tol
    image, label = ds.load_raw(3)
    assert image.shape == (32, 32, 3) and isinstance(label, int) and 0 <= label <= 9
    sample = ds[3]
    assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
    assert 0.0 <= sample["image"].min() and sample["image"].max() <= 1.0
    assert sample["label"].item() == ds.labels[3]


def test_full_train_split():
    ds = EmbeddedDigits("digits-photo", "train").setup()
    assert len(ds) == SPLIT_SIZES["train"] and ds.images.shape == (SPLIT_SIZES["train"], 32, 32, 3)
    assert np.isin(ds.source_index, digit_split()["train"]).all()
    assert np.bincount(ds.labels, minlength=10).min() > 450


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def test_images_are_made_from_the_scan_they_name(built):
    """``source_index`` is truthful: an image matches its own scan better than another scan of its class.

    With the pool check above this is what keeps test handwriting out of training.
    """
    scans, labels = load_digits(return_X_y=True)
    ds = built[("digits", "test")]
    images = ds.images[:300, ..., 0].reshape(300, -1).astype(np.float32)
    up = digit_domains.upscale(scans.reshape(-1, 8, 8).astype(np.float32) / 16, 32).reshape(len(scans), -1)
    rng = np.random.default_rng(0)
    others = [rng.choice(np.setdiff1d(np.flatnonzero(labels == labels[i]), [i])) for i in ds.source_index[:300]]
    own, other = _corr(images, up[ds.source_index[:300]]), _corr(images, up[others])
    assert np.mean(own > other) > 0.8  # 0.5 if the index were unrelated to the image


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
    a, b = built[("digits", "train")]["images"], built[(domain, "train")]["images"]
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
