"""ToyCity: synthetic street scenes in Cityscapes train ids, flat source vs photo-textured target."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from domadapt.data.catalog import CS19_CLASSES
from domadapt.data.embedded import ToyCity
from domadapt.data.toycity import build_toycity
from domadapt.data.transforms import Augment
from domadapt.structures import IGNORE_INDEX

N = 30
SKY, ROAD = CS19_CLASSES.index("sky"), CS19_CLASSES.index("road")


@pytest.fixture(scope="module")
def city():
    return {d: ToyCity(d, "train", num_images=N).setup() for d in ("source", "target")}


@pytest.mark.parametrize("domain", ["source", "target"])
def test_arrays_have_the_documented_format(city, domain):
    ds = city[domain]
    assert ds.images.shape == (N, 64, 128, 3) and ds.images.dtype == np.uint8
    assert ds.masks.shape == (N, 64, 128) and ds.masks.dtype == np.uint8
    assert set(np.unique(ds.masks)) <= set(ToyCity.PRESENT_CLASSES) | {IGNORE_INDEX}
    # A one-pixel unlabelled frame; everything inside is labelled.
    assert (ds.masks[:, 0] == IGNORE_INDEX).all() and (ds.masks[:, :, -1] == IGNORE_INDEX).all()
    assert (ds.masks[:, 1:-1, 1:-1] != IGNORE_INDEX).all()
    assert ds.classes == CS19_CLASSES and ds.num_classes == 19


@pytest.mark.parametrize("domain", ["source", "target"])
def test_every_present_class_is_drawn(city, domain):
    counts = np.bincount(city[domain].masks.ravel(), minlength=256)
    assert all(counts[c] > 0 for c in ToyCity.PRESENT_CLASSES), counts[: 19]
    assert counts[:19].sum() == counts[list(ToyCity.PRESENT_CLASSES)].sum()  # nothing else drawn


@pytest.mark.parametrize("domain", ["source", "target"])
def test_layout_is_plausible(city, domain):
    """Sky above the road in every scene, and the bottom rows are ground, not sky."""
    rows = np.arange(64)[None, :, None]
    for m in city[domain].masks:
        assert (rows[0] * (m == SKY)).sum() / (m == SKY).sum() < (rows[0] * (m == ROAD)).sum() / (m == ROAD).sum()
        assert not (m[-8:-1] == SKY).any()


def _textured_fraction(images: np.ndarray, masks: np.ndarray) -> float:
    """Share of pixels inside one-class regions (5x5 label neighbourhood) whose grey |Laplacian| > 2."""
    fractions = []
    for im, m in zip(images, masks):
        lap = np.abs(cv2.Laplacian(im.astype(np.float32).mean(-1), cv2.CV_32F))
        interior = (cv2.erode(m, np.ones((5, 5), np.uint8)) == cv2.dilate(m, np.ones((5, 5), np.uint8))) & (m != 255)
        fractions.append(float((lap[interior] > 2).mean()))
    return float(np.mean(fractions))


def test_target_differs_from_source(city):
    src, tgt = city["source"], city["target"]
    # Flat shading (texture only at window and lane-marking edges) vs photo textures, blur and noise.
    flat, textured = _textured_fraction(src.images, src.masks), _textured_fraction(tgt.images, tgt.masks)
    assert flat < 0.25 and textured > 0.6, (flat, textured)
    # Lower camera on the target: the far end of the road (its top row) sits lower in the frame.
    top = {d: float(np.mean([np.flatnonzero((m == ROAD).any(1))[0] / 64 for m in city[d].masks])) for d in city}
    assert top["target"] > top["source"] + 0.05, top


def test_scenes_do_not_depend_on_the_count(city):
    few = ToyCity("target", "train", num_images=4).setup()
    assert np.array_equal(few.images, city["target"].images[:4])
    assert np.array_equal(few.masks, city["target"].masks[:4])


def test_generation_is_deterministic():
    a, b = build_toycity("target", "val", 48, 96, 3), build_toycity("target", "val", 48, 96, 3)
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["masks"], b["masks"])
    other = build_toycity("target", "train", 48, 96, 3)
    assert not np.array_equal(a["masks"], other["masks"])  # splits are different scenes


def test_large_size_builds():
    ds = ToyCity("target", "val", height=128, width=256, num_images=2)
    image, mask = ds.load_raw(1)
    assert image.shape == (128, 256, 3) and mask.shape == (128, 256)
    assert (mask[:2] == IGNORE_INDEX).all() and (mask[2:-2, 2:-2] != IGNORE_INDEX).all()


def test_samples_through_augment(city):
    ds = ToyCity("source", "train", num_images=N, transform=Augment(crop=(32, 64), hflip=0.5))
    sample = ds[5]
    assert sample["image"].shape == (3, 32, 64) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (32, 64) and sample["mask"].dtype == torch.long
    assert set(sample["mask"].unique().tolist()) <= set(ToyCity.PRESENT_CLASSES) | {IGNORE_INDEX}
    plain = ToyCity("target", "train", num_images=N, with_labels=False)[0]
    assert plain["image"].shape == (3, 64, 128) and "mask" not in plain


@pytest.mark.parametrize("kwargs", [{"domain": "photo"}, {"split": "test"}, {"height": 16}, {"num_images": 0}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="ToyCity"):
        ToyCity(**kwargs)
