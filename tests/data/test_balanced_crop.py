"""DAFormer's source crop rule (mmseg ``RandomCrop(cat_max_ratio=0.75)``) and its keep-ratio resize (mmseg
``Resize(img_scale, keep_ratio=True)``), each against a NumPy transcription of the released code."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from domadapt.data.balanced_crop import BalancedRandomCrop, dominated
from domadapt.data.transforms import Augment, within_size


def mmseg_crop_box(mask: np.ndarray, draw, ratio: float) -> tuple[int, int, int, int]:
    """mmseg/datasets/pipelines/transforms.py ``RandomCrop.__call__`` written out: a box, then up to 10 new ones
    while the cropped labels have one class only or one with ``>= ratio`` of the non-ignored pixels."""
    box = draw()
    for _ in range(10):
        x0, y0, x1, y1 = box
        labels, cnt = np.unique(mask[y0:y1, x0:x1], return_counts=True)
        cnt = cnt[labels != 255]
        if len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < ratio:
            break
        box = draw()
    return box


def road_scene(seed: int) -> np.ndarray:
    """A 60x80 label map most of whose 24x24 crops are one class: road below, a few small objects, sky, ignore."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((60, 80), np.uint8)
    mask[:15] = 10
    mask[15:20] = 255
    for _ in range(3):
        y, x = rng.integers(20, 55), rng.integers(0, 75)
        mask[y:y + 5, x:x + 5] = rng.integers(11, 19)
    return mask


@pytest.mark.parametrize("seed", range(12))
def test_crop_box_is_mmsegs_for_the_same_draws(seed):
    mask = road_scene(seed)
    image = np.zeros((60, 80, 3), np.uint8)
    image[..., 0] = np.arange(80, dtype=np.uint8)[None]
    image[..., 1] = np.arange(60, dtype=np.uint8)[:, None]
    crop = A.Compose([BalancedRandomCrop(24, 24, ratio=0.75)])
    crop.set_random_seed(seed)
    out = crop(image=image, mask=mask)
    plain = A.RandomCrop(24, 24)  # the same draws, one box each, as mmseg's get_crop_bbox
    A.Compose([plain]).set_random_seed(seed)
    params = {"shape": mask.shape}
    x0, y0, x1, y1 = mmseg_crop_box(mask, lambda: plain.get_params_dependent_on_data(params, {"mask": mask})
                                    ["crop_coords"], 0.75)
    np.testing.assert_array_equal(out["mask"], mask[y0:y1, x0:x1])
    np.testing.assert_array_equal(out["image"], image[y0:y1, x0:x1])


def test_balanced_crops_are_dominated_less_often_and_without_a_mask_it_is_a_random_crop():
    mask = road_scene(0)
    shares = {}
    for name, op in (("plain", A.RandomCrop(24, 24)), ("balanced", BalancedRandomCrop(24, 24, 0.75))):
        pipe = A.Compose([op])
        hits = 0
        for s in range(200):
            pipe.set_random_seed(s)
            hits += dominated(pipe(image=np.zeros((60, 80, 3), np.uint8), mask=mask)["mask"], 0.75)
        shares[name] = hits / 200
    assert shares["plain"] > 0.5 and shares["balanced"] < shares["plain"] - 0.2, shares
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    a, b = A.Compose([A.RandomCrop(24, 24)]), A.Compose([BalancedRandomCrop(24, 24, 0.75)])
    a.set_random_seed(5), b.set_random_seed(5)
    np.testing.assert_array_equal(a(image=image)["image"], b(image=image)["image"])


def test_dominated_is_mmsegs_test():
    assert dominated(np.zeros((4, 4), np.uint8), 0.75)  # one class
    assert dominated(np.full((4, 4), 255, np.uint8), 0.75)  # nothing labelled
    two = np.zeros((4, 4), np.uint8)
    two[:1] = 3  # 4 of 16 pixels: the other class has exactly 0.75, not < 0.75
    assert dominated(two, 0.75) and not dominated(two, 0.76)
    two[1:2, :1] = 255  # ignored pixels do not count: 11 of the 15 labelled pixels = 0.73
    assert not dominated(two, 0.75)


@pytest.mark.parametrize(("hw", "bound", "expected"), [
    ((1052, 1914), (720, 1280), (704, 1280)),   # GTA5 in DAFormer's (1280, 720)
    ((760, 1280), (760, 1280), (760, 1280)),    # SYNTHIA in (1280, 760): unchanged
    ((1024, 2048), (512, 1024), (512, 1024)),   # Cityscapes in (1024, 512)
    ((1914, 1052), (1280, 720), (1280, 704)),   # portrait: the bound is (short, long) in either order
    ((700, 1300), (720, 1280), (689, 1280)),
])
def test_within_size_is_mmcv_rescale_size(hw, bound, expected):
    h, w = hw
    long_edge, short_edge = max(bound), min(bound)  # mmcv.image.geometric.rescale_size written out
    scale = min(long_edge / max(h, w), short_edge / min(h, w))
    assert (int(h * scale + 0.5), int(w * scale + 0.5)) == expected == within_size(h, w, bound)


def test_augment_resizes_within_the_bound_and_re_draws_crops():
    image = np.random.default_rng(1).integers(0, 255, (105, 191, 3), dtype=np.uint8)
    mask = np.zeros((105, 191), np.uint8)
    mask[:, 150:] = 7
    out = Augment(resize_within=(72, 128), train=False)(image=image, mask=mask)
    assert tuple(out["image"].shape) == (3, 70, 128) and tuple(out["mask"].shape) == (70, 128)
    balanced = Augment(resize_within=(72, 128), crop=(32, 32), cat_max_ratio=0.75)
    picked = 0
    for s in range(40):
        balanced.reseed(s)
        picked += not dominated(balanced(image=image, mask=mask)["mask"].numpy(), 0.75)
    assert picked >= 30  # a plain crop of this map passes the test in about a fifth of the draws (x0 in 76..92)
    with pytest.raises(ValueError, match="Augment.resize_within: give resize or resize_within"):
        Augment(resize=(10, 10), resize_within=(10, 10))
    with pytest.raises(ValueError, match=r"Augment.cat_max_ratio: expected a share in \(0, 1\]"):
        Augment(cat_max_ratio=0.0)
