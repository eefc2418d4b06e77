import numpy as np
import pytest
import torch

from domadapt.data.base import ArrayDataset
from domadapt.data.datamodule import DomainAdaptationDataModule
from domadapt.data.transforms import Augment
from domadapt.io import DataError


def _cls(n, seed, classes=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, n), classes,
                        name=f"cls{seed}")


def _seg(n, seed, size=(16, 24)):
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 3, (n, *size)).astype(np.uint8)
    return ArrayDataset(rng.integers(0, 255, (n, *size, 3), dtype=np.uint8), masks, ("a", "b", "c"),
                        task="segmentation", name=f"seg{seed}")


def test_multi_source_batches_have_domains_and_target_has_no_label():
    dm = DomainAdaptationDataModule([_cls(20, 0), _cls(30, 1)], _cls(25, 2), target_val=_cls(10, 3),
                                    batch_size=8, target_batch_size=4)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    batch = batches[0][0] if isinstance(batches[0], tuple) else batches[0]
    assert set(batch) == {"source", "target"}
    assert batch["source"]["image"].shape == (8, 3, 8, 8)
    assert batch["target"]["image"].shape == (4, 3, 8, 8)
    assert "label" in batch["source"] and "label" not in batch["target"]
    domains = torch.cat([(b[0] if isinstance(b, tuple) else b)["source"]["domain"] for b in batches])
    assert set(domains.tolist()) == {0, 1}
    assert set(batch["target"]["domain"].tolist()) == {2}
    # max_size_cycle: one epoch = the longer loader with drop_last -> 50 // 8 = 6 source batches
    assert len(batches) == 6
    assert dm.val_names == ["target"]


def test_segmentation_with_transform_applies_same_geometry():
    dm = DomainAdaptationDataModule(_seg(8, 0), _seg(8, 1), target_val=_seg(4, 2),
                                    train_transform=Augment(crop=(8, 8), hflip=1.0),
                                    eval_transform=Augment(train=False), batch_size=4)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    b = b[0] if isinstance(b, tuple) else b
    assert b["source"]["image"].shape == (4, 3, 8, 8) and b["source"]["mask"].shape == (4, 8, 8)
    assert b["source"]["mask"].dtype == torch.long and "mask" not in b["target"]
    v = next(iter(dm.val_dataloader()[0]))
    assert v["mask"].shape == (4, 16, 24)


def test_class_lists_must_match():
    dm = DomainAdaptationDataModule(_cls(10, 0, ("a", "b", "c")), _cls(10, 1, ("a", "b", "x")), batch_size=2)
    with pytest.raises(DataError, match="class list"):
        dm.setup()


def test_too_small_for_one_batch_is_reported():
    dm = DomainAdaptationDataModule(_cls(3, 0), _cls(10, 1), batch_size=4)
    dm.setup()
    with pytest.raises(DataError, match="cls0: 3 samples is fewer than one batch of 4"):
        dm.train_dataloader()


def test_workers_load_batches():
    dm = DomainAdaptationDataModule(_cls(16, 0), _cls(16, 1), batch_size=4, num_workers=2,
                                    train_transform=Augment(hflip=0.5))
    dm.setup()
    n = sum(1 for _ in dm.train_dataloader())
    assert n == 4


def test_predict_uses_eval_transform():
    dm = DomainAdaptationDataModule(_seg(4, 0), _seg(4, 1), batch_size=2,
                                    train_transform=Augment(crop=(8, 8)), eval_transform=Augment(train=False))
    dm.setup()
    b = next(iter(dm.predict_dataloader()))
    assert b["image"].shape[-2:] == (16, 24)  # no random crop at prediction time
