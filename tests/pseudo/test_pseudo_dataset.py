"""PseudoLabelled: samples carry the written labels; stale, unfinished or damaged sets are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from domadapt.data.datamodule import DomainAdaptationDataModule
from domadapt.data.transforms import Augment
from domadapt.io import DataError, read_index_png
from domadapt.pseudo.dataset import PseudoLabelled
from domadapt.pseudo.generate import LabelOptions, generate_pseudo_labels
from domadapt.pseudo.thresholds import GlobalThreshold

from pseudo_fakes import FixedCls, FixedSeg, cls_dataset, seg_dataset


@pytest.fixture
def seg_set(tmp_path):
    ds = seg_dataset(n=4, name="tgt")
    manifest = generate_pseudo_labels(FixedSeg(), ds, tmp_path / "pl", GlobalThreshold(0.7), LabelOptions(output_size=(6, 8)),
                                      progress=False, verbose=False)
    return ds, tmp_path / "pl", manifest


def test_segmentation_samples_carry_pseudo_masks_at_image_size(seg_set):
    ds, pl_dir, manifest = seg_set
    wrapped = PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir, expect_model_hash=manifest["model"]["sha256"])
    sample = wrapped[2]
    stored = read_index_png(pl_dir / "labels" / "000002.png")  # (6, 8), generated at half size
    assert stored.shape == (6, 8)
    expected = stored.repeat(2, 0).repeat(2, 1)  # nearest-neighbour x2 to the raw 12x16 image
    np.testing.assert_array_equal(sample["mask"].numpy(), expected)
    np.testing.assert_allclose(sample["image"].numpy(), ds.images[2].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert wrapped.kept_ratio == manifest["kept_ratio"]["overall"]


def test_datamodule_keeps_pseudo_labels_and_strips_ground_truth(seg_set):
    _, pl_dir, _ = seg_set
    target = PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir)
    dm = DomainAdaptationDataModule(seg_dataset(n=4, seed=3), target, train_transform=Augment(hflip=1.0), batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    tgt = batch[0]["target"] if isinstance(batch, tuple) else batch["target"]
    assert "mask" in tgt and tgt["mask"].shape == (2, 12, 16)
    raw = {int(i): read_index_png(pl_dir / "labels" / f"{int(i):06d}.png").repeat(2, 0).repeat(2, 1)
           for i in tgt["index"]}
    for j, i in enumerate(tgt["index"].tolist()):  # flipped together with the image
        np.testing.assert_array_equal(tgt["mask"][j].numpy(), raw[i][:, ::-1])
    plain = seg_dataset(n=4, name="tgt")
    dm2 = DomainAdaptationDataModule(seg_dataset(n=4, seed=3), plain, batch_size=2)
    batch2 = next(iter(dm2.train_dataloader()))
    tgt2 = batch2[0]["target"] if isinstance(batch2, tuple) else batch2["target"]
    assert "mask" not in tgt2  # real target labels are still never loaded for training


def test_classification_labels(tmp_path):
    generate_pseudo_labels(FixedCls(), cls_dataset(), tmp_path, GlobalThreshold(0.6), progress=False, verbose=False)
    wrapped = PseudoLabelled(cls_dataset(), tmp_path)
    rows = (tmp_path / "labels.csv").read_text().splitlines()[1:]
    labels = [int(r.split(",")[1]) for r in rows]
    assert [int(wrapped[i]["label"]) for i in range(len(wrapped))] == labels
    assert 255 in labels and any(v != 255 for v in labels)


def test_missing_manifest_means_unfinished(seg_set):
    _, pl_dir, _ = seg_set
    (pl_dir / "manifest.json").unlink()
    with pytest.raises(DataError, match="manifest.json: missing; .*unfinished"):
        PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir).setup()


@pytest.mark.parametrize("field,dataset,match", [
    ("count", seg_dataset(n=3, name="tgt"), "field `images.count` is 4 but tgt has 3 samples"),
    ("hash", seg_dataset(n=4, name="other"), "field `images.sha256` does not match"),
])
def test_labels_of_another_dataset_are_refused(seg_set, field, dataset, match):
    _, pl_dir, _ = seg_set
    with pytest.raises(DataError, match=match):
        PseudoLabelled(dataset, pl_dir).setup()


def test_labels_of_another_model_are_refused(seg_set):
    _, pl_dir, _ = seg_set
    with pytest.raises(DataError, match="field `model.sha256`"):
        PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir, expect_model_hash="0" * 64).setup()


def test_missing_label_file_is_named(seg_set):
    _, pl_dir, _ = seg_set
    (pl_dir / "labels" / "000003.png").unlink()
    with pytest.raises(DataError, match="000003.png: pseudo-label file missing"):
        PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir).setup()


def test_label_file_deleted_after_setup_is_a_data_error_even_with_skip_corrupt(seg_set):
    _, pl_dir, _ = seg_set
    ds = seg_dataset(n=4, name="tgt")
    ds.skip_corrupt = True
    wrapped = PseudoLabelled(ds, pl_dir).setup()
    (pl_dir / "labels" / "000001.png").unlink()
    with pytest.raises(DataError, match="000001.png.*damaged"):
        wrapped[1]


def test_wrong_format_and_task(seg_set, tmp_path):
    _, pl_dir, _ = seg_set
    doc = json.loads((pl_dir / "manifest.json").read_text())
    (pl_dir / "manifest.json").write_text(json.dumps({**doc, "task": "classification"}))
    with pytest.raises(DataError, match="field `task`"):
        PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir).setup()
    (pl_dir / "manifest.json").write_text(json.dumps({**doc, "format": "something/v0"}))
    with pytest.raises(DataError, match="field `format`"):
        PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir).setup()
    assert torch.is_tensor(PseudoLabelled(seg_dataset(n=4, name="tgt"), pl_dir).dataset.setup()[0]["image"])
