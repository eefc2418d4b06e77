"""SelfTrainingDataModule: style-transferred sources, the mixed ρ loader split back into source/target,
rarest-class sampling labels for segmentation, and the fallback to the plain two loaders."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities import CombinedLoader

from domadapt.data.self_training import SelfTrainingDataModule, sampling_labels
from domadapt.data.style_transfer import FourierTransfer, StyleTransferred
from domadapt.data.transforms import Augment
from domadapt.pseudo.dataset import PseudoLabelled
from tests.cdssl.cdssl_toys import write_pseudo_set
from tests.conftest import random_domain

PSEUDO = np.array([0] * 40 + [1] * 12 + [2] * 4 + [255] * 8)  # 64 target samples, class 3 never predicted


def module(tmp_path, task="classification", **kw) -> SelfTrainingDataModule:
    src = random_domain(task, 48, 0, size=(16, 16))
    raw_target = random_domain(task, 64, 1, shift=30, size=(16, 16))
    labels = PSEUDO if task == "classification" else np.stack([np.full((16, 16), c, np.uint8) for c in PSEUDO])
    pseudo = functools.partial(PseudoLabelled, pseudo_dir=write_pseudo_set(raw_target, labels, tmp_path / "pl"))
    kw.setdefault("train_transform", Augment(mean=(0.5,) * 3, std=(0.5,) * 3))
    return SelfTrainingDataModule(src, raw_target, batch_size=6, target_batch_size=2, pseudo_labels=pseudo, **kw)


def test_mixed_loader_splits_batches_by_domain_at_ratio_rho(tmp_path):
    dm = module(tmp_path, target_ratio=0.2, target_ratio_end=0.6, rounds=3, round=1, epoch_size=400)
    loader = dm.train_dataloader()
    assert dm.mixed and dm.sampler.ratio_now == pytest.approx(0.4)
    n_s = n_t = 0
    drawn = []
    for batch in loader:
        assert set(batch) <= {"source", "target"}
        if "source" in batch:
            assert (batch["source"]["domain"] == 0).all() and "label" in batch["source"]
            n_s += len(batch["source"]["index"])
        if "target" in batch:
            tgt = batch["target"]
            assert (tgt["domain"] == 1).all() and tgt["image"].shape[1:] == (3, 16, 16)
            assert torch.equal(tgt["label"], torch.as_tensor(PSEUDO[tgt["index"].numpy()]))  # pseudo, not ground truth
            drawn += tgt["label"].tolist()
            n_t += len(tgt["index"])
    assert n_s + n_t == 400 and n_t == 160  # 50 batches of 8, ρ = 0.4
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    np.testing.assert_allclose(freq[:3], 1 / 3, atol=0.02)  # balanced over the three predicted classes
    assert freq[3] == 0 and 255 not in drawn and dm.sampler.missing_classes == [3]


def test_rounds_move_rho(tmp_path):
    ratios = [module(tmp_path / str(r), target_ratio=0.1, target_ratio_end=0.5, rounds=3, round=r) for r in range(3)]
    for dm in ratios:
        dm.train_dataloader()
    assert [dm.sampler.ratio_now for dm in ratios] == pytest.approx([0.1, 0.3, 0.5])


def test_style_transfer_wraps_sources_with_raw_target_references(tmp_path):
    dm = module(tmp_path, style_transfer=FourierTransfer(0.2))
    dm.setup()
    (src,) = dm.sources
    assert isinstance(src, StyleTransferred) and src.include_original and len(src) == 96
    assert src.references is dm.target.dataset  # raw target images, not the PseudoLabelled wrapper
    assert src.domain == 0 and src.transform is dm.train_transform
    original, restyled = src.load_raw(5), src.load_raw(48 + 5)
    assert original[1] == restyled[1] and not np.array_equal(original[0], restyled[0])
    only = module(tmp_path / "b", style_transfer=FourierTransfer(0.2), keep_original_source=False)
    only.setup()
    assert len(only.sources[0]) == 48


def test_without_ratio_the_plain_loaders_are_used_and_without_pseudo_labels_source_only(tmp_path, capsys):
    dm = module(tmp_path)  # target_ratio None
    assert isinstance(dm.train_dataloader(), CombinedLoader) and not dm.mixed
    plain = SelfTrainingDataModule(random_domain("classification", 16, 0), random_domain("classification", 16, 1),
                                   batch_size=2, target_batch_size=2, target_ratio=0.5)
    batches = list(plain.train_dataloader())  # round 0: no pseudo labels yet
    assert len(batches) == 8 and all(set(b) == {"source"} and len(b["source"]["index"]) == 4 for b in batches)
    assert plain.sampler.ratio_now == 0.0 and "no pseudo labels yet: source only" in capsys.readouterr().out


def test_segmentation_samples_are_drawn_by_their_rarest_class(tmp_path):
    raw = random_domain("segmentation", 6, 1, size=(8, 8))
    masks = np.zeros((6, 8, 8), np.uint8)  # class 0 everywhere (frequent) ...
    masks[1, :2] = 2  # ... image 1 also has 16 px of class 2, image 3 has 4 px of class 1, image 4 nothing kept
    masks[3, 0, :4] = 1
    masks[2, :, :] = 2
    masks[4] = 255
    target = PseudoLabelled(raw, write_pseudo_set(raw, masks, tmp_path / "pl")).setup()
    # frequencies: class 0: 4*64 - 16 - 4 = 236, class 1: 4, class 2: 16 + 64 = 80
    assert sampling_labels(target, 4).tolist() == [0, 2, 2, 1, 255, 0]
    assert sampling_labels(target, 4, min_pixels=5).tolist() == [0, 2, 2, 0, 255, 0]


def test_bad_ratio_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"SelfTrainingDataModule.target_ratio_end: expected ρ in \[0, 1\], got 2"):
        SelfTrainingDataModule(random_domain("classification", 4, 0), random_domain("classification", 4, 1),
                               target_ratio=0.5, target_ratio_end=2)
