"""Whole-batch loading of in-memory data (`domadapt.data.batching`): a batch built in one gather equals, bit for bit,
the collated samples of the per-sample path, for every transform that takes it; the others keep the per-sample path;
any `collate_fn` still sees samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from domadapt.data import Augment, DomainAdaptationDataModule
from domadapt.data.batching import BatchedSamples, TransformedImages, collate_samples, lookup, pixel_table
from tests.conftest import random_domain

PIXELWISE = {
    "default (to [0, 1])": None,
    "imagenet": Augment(),
    "half": Augment(mean=(0.5,) * 3, std=(0.5,) * 3),
    "caffe eval": Augment(mean=(0.48, 0.46, 0.41), std=(1 / 255,) * 3, train=False, hflip=0.5),
}


def per_sample(ds, indices) -> dict:
    return default_collate([ds[i] for i in indices])


@pytest.mark.parametrize("task", ["classification", "segmentation"])
@pytest.mark.parametrize("name", list(PIXELWISE))
def test_a_batch_of_in_memory_data_equals_the_collated_samples(task, name):
    ds = random_domain(task, 40, 0, size=(16, 24))
    ds.transform, ds.domain = PIXELWISE[name], 2
    indices = [7, 3, 39, 3, 0]
    got = ds.__getitems__(indices)
    assert isinstance(got, BatchedSamples) and len(got) == 5
    want = per_sample(ds, indices)
    batch = collate_samples(got)
    assert list(batch) == list(want)  # same keys, same order
    for key in want:
        assert batch[key].dtype == want[key].dtype and torch.equal(batch[key], want[key]), key
    assert torch.equal(default_collate(got)["image"], want["image"])  # any collate_fn sees the samples
    ds.with_labels = False
    unlabelled = collate_samples(ds.__getitems__(indices))
    assert "label" not in unlabelled and "mask" not in unlabelled


@pytest.mark.parametrize("transform", [Augment(hflip=0.5), Augment(crop=(8, 8)), Augment(color_jitter=0.2),
                                       Augment(resize=(8, 12), train=False)], ids=["flip", "crop", "jitter", "resize"])
def test_transforms_that_move_or_draw_keep_the_per_sample_path(transform):
    ds = random_domain("classification", 8, 0, size=(16, 24))
    ds.transform = transform
    assert transform.pixel_table() is None
    got = ds.__getitems__([1, 2])
    assert isinstance(got, list) and len(got) == 2 and got[0]["image"].shape[0] == 3


def test_pixel_table_is_the_transform_on_every_value_and_lookup_applies_it():
    aug = Augment(mean=(0.2, 0.5, 0.7), std=(0.3, 0.25, 0.1))
    table = pixel_table(aug)
    assert table.shape == (768,) and table.dtype == torch.float32
    v = np.arange(256)
    mean, std = np.array([0.2, 0.5, 0.7])[:, None], np.array([0.3, 0.25, 0.1])[:, None]
    np.testing.assert_allclose(table.view(3, 256).numpy(), (v[None] / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    out = lookup(images, table)
    assert out.shape == (3, 3, 5, 7)
    assert float(out[2, 1, 4, 6]) == float(table[256 + int(images[2, 4, 6, 1])])


def test_a_large_array_is_looked_up_per_batch_with_the_same_values():
    images = np.random.default_rng(0).integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    table = pixel_table(Augment())
    whole, per_batch = TransformedImages(images, table), TransformedImages(images, table, budget=100)
    assert whole.whole is not None and per_batch.whole is None
    positions = np.array([4, 19, 0])
    assert torch.equal(whole[positions], per_batch[positions])


def test_the_datamodule_loaders_train_on_the_same_batches_either_way():
    def module(transform_pixelwise: bool) -> DomainAdaptationDataModule:
        src, tgt = random_domain("classification", 48, 0), random_domain("classification", 48, 1, shift=30)
        if not transform_pixelwise:  # same values, but the per-sample path: a subclass without in-memory arrays
            for ds in (src, tgt):
                ds._arrays = lambda: None
        return DomainAdaptationDataModule(src, tgt, target_val=random_domain("classification", 20, 2),
                                          train_transform=Augment(), eval_transform=Augment(train=False),
                                          batch_size=16, seed=3)

    fast, slow = module(True), module(False)
    for (a, *_), (b, *_) in zip(fast.train_dataloader(), slow.train_dataloader()):  # (batch, index, loader index)
        for dom in ("source", "target"):
            assert a[dom].keys() == b[dom].keys()
            assert all(torch.equal(a[dom][k], b[dom][k]) for k in a[dom])
    va, vb = next(iter(fast.val_dataloader()[0])), next(iter(slow.val_dataloader()[0]))
    assert all(torch.equal(va[k], vb[k]) for k in va)


def test_workers_build_their_own_copy():
    ds = random_domain("classification", 16, 0)
    ds.transform = Augment()
    ds.__getitems__([0])
    assert "_pixelwise" in vars(ds)
    assert "_pixelwise" not in ds.__getstate__()
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate_samples)
    assert torch.equal(next(iter(loader))["image"], per_sample(ds, [0, 1, 2, 3])["image"])
