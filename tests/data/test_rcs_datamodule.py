"""``source_sampling="rare_class"`` of the DataModule on the embedded ToyCity: the source loader draws with rare-class
sampling and re-draws crops, reproducibly and resumably; the crop re-draw rule alone; bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from domadapt.data import ArrayDataset, DomainAdaptationDataModule, ToyCity
from domadapt.data.rare_class import RareClassIndex, RareClassSampler
from domadapt.data.rare_class_crops import RareClassCrops, redraw_seed
from domadapt.data.resumable import SeededConcatDataset, SeededIndex, resume_loader
from domadapt.data.self_training import SelfTrainingDataModule
from domadapt.data.transforms import Augment

K, N, MIN_PIXELS = 19, 40, 30


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))  # never the user's cache


def datamodule(**kw) -> DomainAdaptationDataModule:
    args = dict(train_transform=Augment(crop=(32, 64), hflip=0.5), batch_size=4, seed=0,
                source_sampling="rare_class", rcs_min_pixels=MIN_PIXELS)
    source, target = ToyCity("source", "train", num_images=N), ToyCity("target", "train", num_images=N)
    return DomainAdaptationDataModule(source, target, **{**args, **kw})


def source_batches(dm: DomainAdaptationDataModule, n: int, start: int = 0) -> list[dict]:
    loader = dm.train_dataloader().iterables["source"]
    if start:
        resume_loader(loader, epoch=0, batches=start)
    out = []
    for b in loader:
        out.append(b)
        if len(out) == n:
            break
    return out


def test_source_loader_draws_by_rare_class_and_redraws_crops():
    dm = datamodule()
    batches = source_batches(dm, 5)
    counts = dm._source_pixels
    assert counts.shape == (N, K) and isinstance(dm.source_sampler, RareClassSampler)
    fresh = RareClassSampler(counts, 0.01, MIN_PIXELS, seed=0)  # the draw the loader's first pass makes
    draws = list(fresh)[:20]
    got = torch.cat([b["index"] for b in batches]).tolist()
    assert got == [int(d) for d in draws]
    assert all(counts[int(d), d.rare_class] > MIN_PIXELS for d in draws)  # only images holding the class
    masks = torch.cat([b["mask"] for b in batches])
    assert masks.shape == (20, 32, 64)
    shown = [int((m == d.rare_class).sum()) for m, d in zip(masks, draws)]

    plain = source_batches(datamodule(rcs_min_crop_ratio=0.0), 5)  # the same draws, crops not re-drawn
    assert torch.cat([b["index"] for b in plain]).tolist() == got
    shown_plain = [int((m == d.rare_class).sum()) for m, d in zip(torch.cat([b["mask"] for b in plain]), draws)]
    enough = MIN_PIXELS * 0.5
    assert sum(s > enough for s in shown) > sum(s > enough for s in shown_plain)
    assert sum(s > enough for s in shown) >= 18, shown  # what is left: 10 re-draws all missed a small object


def test_same_seed_same_batches_and_a_resumed_loader_continues_bit_for_bit():
    full = source_batches(datamodule(), 6)
    again = source_batches(datamodule(), 6)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(full, again) for k in ("image", "mask", "index"))
    resumed = source_batches(datamodule(), 3, start=3)  # a run killed after 3 batches of epoch 0
    assert all(torch.equal(a[k], b[k]) for a, b in zip(full[3:], resumed) for k in ("image", "mask", "index"))
    other = source_batches(datamodule(seed=1), 6)
    assert not all(torch.equal(a["index"], b["index"]) for a, b in zip(full, other))


def test_uniform_is_the_default_and_unchanged():
    dm = datamodule(source_sampling="uniform")
    loader = dm.train_dataloader().iterables["source"]
    assert dm.source_sampler is None and type(loader.sampler).__name__ == "ResumableRandomSampler"
    assert isinstance(loader.dataset, ToyCity)


def test_a_few_training_steps_with_rare_class_sampling():
    from domadapt.methods import SourceOnly
    from tests.conftest import TinySegNet

    torch.manual_seed(0)
    trainer = pl.Trainer(max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(SourceOnly(net=TinySegNet(num_classes=K)), datamodule())
    assert trainer.global_step == 3


class Probe(torch.utils.data.Dataset):
    """Mask all class 1 when the augmentation seed is a multiple of ``every``, else all class 0; records seeds."""

    def __init__(self, every: int) -> None:
        self.every, self.seeds = every, []

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index):
        self.seeds.append(index.seed)
        return {"mask": torch.full((4, 4), int(index.seed % self.every == 0)), "index": int(index)}


def test_crops_are_redrawn_at_most_ten_times_until_they_hold_more_than_the_threshold():
    seed = next(s for s in range(1000) if s % 7 and redraw_seed(s, 1) % 7 and redraw_seed(s, 2) % 7 == 0)
    probe = Probe(every=7)
    out = RareClassCrops(probe, min_pixels=20, min_crop_ratio=0.5)[RareClassIndex(2, seed, 1)]
    assert probe.seeds == [seed, redraw_seed(seed, 1), redraw_seed(seed, 2)] and int(out["mask"][0, 0]) == 1
    never = Probe(every=10**12)
    out = RareClassCrops(never, min_pixels=20, min_crop_ratio=0.5)[RareClassIndex(2, 5, 1)]
    assert len(never.seeds) == 11 and never.seeds[1:] == [redraw_seed(5, j) for j in range(1, 11)]  # last one kept
    strict = Probe(every=1)  # 16 pixels of class 1: not more than 32 · 0.5 = 16, so re-drawn to the end
    RareClassCrops(strict, min_pixels=32, min_crop_ratio=0.5)[RareClassIndex(0, 3, 1)]
    assert len(strict.seeds) == 11
    passthrough = Probe(every=7)
    RareClassCrops(passthrough, 20)[SeededIndex(1, 4)]
    RareClassCrops(passthrough, 20, min_crop_ratio=0.0)[RareClassIndex(1, 4, 1)]
    assert passthrough.seeds == [4, 4]
    both = RareClassCrops(SeededConcatDataset([ToyCity(num_images=2), ToyCity(num_images=3)]), 20)
    assert both.describe() == ("RareClassCrops(ToyCity(source, train, 2x64x128) + ToyCity(source, train, 3x64x128), "
                               "> 10 px of the drawn class)") and len(both) == 5


@pytest.mark.parametrize("kw,match", [
    ({"rcs_temperature": 0.0}, r"DomainAdaptationDataModule.rcs_temperature: expected T > 0, got 0.0"),
    ({"rcs_min_pixels": -5}, r"DomainAdaptationDataModule.rcs_min_pixels: expected >= 0, got -5"),
    ({"rcs_min_crop_ratio": -0.5}, r"DomainAdaptationDataModule.rcs_min_crop_ratio: expected >= 0, got -0.5"),
    ({"source_sampling": "balanced"}, r"DomainAdaptationDataModule.source_sampling: expected 'uniform' or "
                                      r"'rare_class', got 'balanced'"),
])
def test_bad_values_are_one_line_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        datamodule(**kw)


def test_a_classification_source_or_the_mixed_loader_refuses_rare_class():
    digits = ArrayDataset(np.zeros((8, 8, 8, 3), np.uint8), np.arange(8) % 2, ("a", "b"), name="digits")
    with pytest.raises(ValueError, match=r"DomainAdaptationDataModule.source_sampling: 'rare_class' needs "
                                         r"segmentation sources, got the classification source digits"):
        DomainAdaptationDataModule(digits, digits, source_sampling="rare_class")
    with pytest.raises(ValueError, match=r"SelfTrainingDataModule.source_sampling: 'rare_class' draws the source "
                                         r"loader, which target_ratio replaces"):
        SelfTrainingDataModule(ToyCity("source", "train", num_images=4), ToyCity("target", "train", num_images=4),
                               source_sampling="rare_class", target_ratio=0.5)
