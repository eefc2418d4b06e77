"""`Augment(resize_shorter=N)`: the shorter side to N with Pillow's antialiased filter and the aspect ratio kept (the
longer side truncated), as torchvision's `Scale(N)` in the released DRT code (drt.py:94-112); masks nearest."""

from __future__ import annotations

import numpy as np
import pytest
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
