"""Behaviour every adapter shares, checked on generated trees in each official format."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from adapter_trees import encode_image
from domadapt.data import Augment
from domadapt.io import CorruptSampleError, DataError


def _expected(tree, i):
    if tree.kind == "domainnet":
        return tree.raws[i]
    return tree.ref[tree.raws[i]]  # (H, W) train ids from the test-side table


def test_samples_match_reference_tables(any_tree):
    ds = any_tree.make()
    assert len(ds) == 3
    if any_tree.kind != "domainnet":
        assert ds.protocol == ("16" if any_tree.kind == "synthia" else "19")
    for i in range(3):
        sample = ds[i]
        if any_tree.kind == "domainnet":
            assert sample["label"].item() == any_tree.raws[i]
            assert ds.classes[sample["label"].item()] in str(any_tree.images[i])
        else:
            assert torch.equal(sample["mask"], torch.from_numpy(_expected(any_tree, i)))
            image = (sample["image"] * 255).round().byte().permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(image, encode_image(any_tree.raws[i]))
        assert sample["index"].item() == i


def test_unlabelled_mode_returns_no_target(any_tree):
    sample = any_tree.make(with_labels=False)[0]
    assert "mask" not in sample and "label" not in sample
    assert sample["image"].shape[0] == 3


def test_missing_root_names_the_path(any_tree, tmp_path):
    shutil.rmtree(any_tree.root)
    with pytest.raises(DataError, match=str(any_tree.root)):
        any_tree.make().setup()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_raises_naming_the_file(any_tree, damage):
    path = any_tree.images[1]
    data = path.read_bytes()
    path.write_bytes(b"this is not an image" if damage == "garbage" else data[: len(data) // 2])
    ds = any_tree.make()
    ds[0]  # the intact samples still load
    with pytest.raises(CorruptSampleError, match=path.name):
        ds[1]


def test_skip_corrupt_skips_with_a_counted_warning(any_tree):
    any_tree.images[1].write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = any_tree.make(skip_corrupt=True)
    with pytest.warns(UserWarning, match=r"skipping corrupt sample \(1 so far"):
        sample = ds[1]
    assert ds.num_skipped == 1
    assert sample["image"].shape[0] == 3  # replaced by the next sample (index 2)
    if any_tree.kind != "domainnet":
        assert torch.equal(sample["mask"], torch.from_numpy(_expected(any_tree, 2)))


def test_dataloader_workers_with_augment_keep_image_and_mask_aligned(any_tree):
    """Geometric transforms must hit image and mask identically, also in worker processes."""
    aug = Augment(scale=(0.75, 1.5), crop=(28, 36), hflip=0.5, mean=(0, 0, 0), std=(1, 1, 1),
                  interpolation="nearest")
    ds = any_tree.make(transform=aug)
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = [b for _ in range(3) for b in loader]  # several epochs: several random draws
    for batch in batches:
        assert batch["image"].shape == (3, 3, 28, 36)
        if any_tree.kind == "domainnet":
            assert batch["label"].tolist() == any_tree.raws
            continue
        image = (batch["image"] * 255).round().long()  # (N, 3, H, W) = (raw id, 100, 200) or padding 0
        padded = image[:, 1] == 0
        mask = batch["mask"]  # (N, H, W)
        ref = torch.from_numpy(any_tree.ref)
        assert torch.equal(mask[padded], torch.full_like(mask[padded], 255))
        assert torch.equal(mask[~padded], ref[image[:, 0][~padded]])
