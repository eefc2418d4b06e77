"""`Augment` resizing as the released loaders resize: `resize_shorter=N` (the shorter side to N with Pillow's antialiased
filter and the aspect ratio kept, the longer side truncated, as torchvision's `Scale(N)` in the released DRT code,
drt.py:94-112) and `resize=(h, w)` (`Image.resize`, as BDL's loaders); masks nearest. `full_resolution_mask`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from domadapt.data.transforms import Augment

PLAIN = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def scale_reference(image: np.ndarray, size: int, resample=Image.BILINEAR) -> np.ndarray:
    """torchvision 0.2 `transforms.Scale(size)` on a PIL image, written out."""
    pil = Image.fromarray(image)
    w, h = pil.size
    if w < h:
        ow, oh = size, int(size * h / w)
    else:
        oh, ow = size, int(size * w / h)
    return np.asarray(pil.resize((ow, oh), resample))


@pytest.mark.parametrize("hw", [(300, 500), (900, 256), (1037, 611), (256, 256), (120, 90)],
                         ids=["wide", "tall", "odd", "already", "upscale"])
def test_resize_shorter_equals_torchvision_scale_on_pil_images(hw):
    image = np.random.default_rng(sum(hw)).integers(0, 256, (*hw, 3), dtype=np.uint8)
    out = Augment(resize_shorter=256, train=False, **PLAIN)(image=image)["image"].permute(1, 2, 0).numpy()
    ref = scale_reference(image, 256).astype(np.float32) / 255
    assert out.shape == ref.shape and min(out.shape[:2]) == 256
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_resize_shorter_then_centre_crop_is_the_released_evaluation_transform():
    image = np.random.default_rng(1).integers(0, 256, (400, 700, 3), dtype=np.uint8)
    out = Augment(resize_shorter=256, crop=(224, 224), train=False, **PLAIN)(image=image)["image"].permute(1, 2, 0)
    ref = scale_reference(image, 256)
    top, left = (ref.shape[0] - 224) // 2, (ref.shape[1] - 224) // 2
    np.testing.assert_allclose(out.numpy(), ref[top:top + 224, left:left + 224].astype(np.float32) / 255, atol=1e-6)


def test_masks_follow_with_nearest_and_bad_sides_are_refused():
    image = np.zeros((300, 500, 3), np.uint8)
    mask = np.kron(np.arange(15).reshape(3, 5), np.ones((100, 100), np.int64)).astype(np.uint8)
    out = Augment(resize_shorter=150, train=False, **PLAIN)(image=image, mask=mask)["mask"].numpy()
    assert out.shape == (150, 250) and set(np.unique(out)) == set(range(15))  # no blended label values
    with pytest.raises(ValueError, match="resize_shorter"):
        Augment(resize_shorter=0)


@pytest.mark.parametrize("train", [True, False])
def test_resize_is_the_released_loaders_pillow_resize_in_training_and_evaluation(train):
    """BDL ``gta5_dataset.py:37-38``: ``image.resize(size, Image.BICUBIC)``, ``label.resize(size, Image.NEAREST)``."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (105, 191, 3), dtype=np.uint8)
    mask = rng.integers(0, 19, (105, 191), dtype=np.uint8)
    out = Augment(resize=(72, 128), interpolation="cubic", train=train, **PLAIN)(image=image, mask=mask)
    expected = np.asarray(Image.fromarray(image).resize((128, 72), Image.BICUBIC))
    np.testing.assert_allclose(out["image"].permute(1, 2, 0).numpy() * 255, expected, atol=1e-3)
    nearest = np.asarray(Image.fromarray(mask).resize((128, 72), Image.NEAREST))
    np.testing.assert_array_equal(out["mask"].numpy(), nearest)
    gray = rng.integers(0, 256, (105, 191, 2), dtype=np.uint8)  # no Pillow mode: resized channel by channel
    two = Augment(resize=(72, 128), train=False, mean=(0, 0), std=(1, 1))(image=gray)["image"]
    expected = np.asarray(Image.fromarray(gray[..., 1]).resize((128, 72), Image.BILINEAR))
    np.testing.assert_allclose(two[1].numpy() * 255, expected, atol=1e-3)


def test_full_resolution_mask_resizes_the_image_only_and_only_for_evaluation():
    rng = np.random.default_rng(2)
    image, mask = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8), rng.integers(0, 19, (64, 128), dtype=np.uint8)
    out = Augment(resize=(32, 64), train=False, full_resolution_mask=True, **PLAIN)(image=image, mask=mask)
    assert tuple(out["image"].shape) == (3, 32, 64)
    assert out["mask"].dtype == torch.uint8 and np.array_equal(out["mask"].numpy(), mask)  # untouched
    for bad in ({"train": True}, {"train": False, "crop": (16, 16)}):
        with pytest.raises(ValueError, match="full_resolution_mask"):
            Augment(resize=(32, 64), full_resolution_mask=True, **bad)
