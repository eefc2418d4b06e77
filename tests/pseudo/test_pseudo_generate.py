"""generate_pseudo_labels: files, thresholds and manifest against a NumPy recomputation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from domadapt.data.datamodule import DomainAdaptationDataModule
from domadapt.data.transforms import Augment
from domadapt.io import read_index_png, write_png
from domadapt.pseudo.generate import QUANT, LabelOptions, generate_pseudo_labels
from domadapt.pseudo.thresholds import ClassPercentile, GlobalThreshold
from domadapt.fingerprint import file_sha256, state_sha256

from pseudo_fakes import FixedCls, FixedSeg, cls_dataset, reference_predictions, seg_dataset


def quantized(conf: np.ndarray) -> np.ndarray:
    return np.minimum(np.floor(conf * QUANT), QUANT - 1) / QUANT


def test_segmentation_labels_thresholds_and_manifest(tmp_path, capsys):
    ds, model = seg_dataset(), FixedSeg()
    out = tmp_path / "pl"
    manifest = generate_pseudo_labels(model, ds, out, ClassPercentile(0.5, cap=0.9), LabelOptions(batch_size=4),
                                      progress=False)
    pred, conf = reference_predictions(model, ds)  # (N, H, W)
    q = quantized(conf)
    thr = np.asarray(manifest["thresholds"])
    for c in range(3):  # per-class median of the run's confidences, within one bin, capped at 0.9
        v = np.sort(q[pred == c])
        exact = min(v[min(int(np.round(0.5 * v.size)), v.size - 1)], 0.9)
        assert -1e-12 <= thr[c] - exact <= 1e-3
    expected = np.where(q >= thr[pred], pred, 255).astype(np.uint8)
    files = sorted(p.name for p in (out / "labels").iterdir())
    assert files == [f"{i:06d}.png" for i in range(len(ds))]
    for i in range(len(ds)):
        with Image.open(out / "labels" / f"{i:06d}.png") as im:
            assert im.mode == "L" and im.size == (16, 12)
        np.testing.assert_array_equal(read_index_png(out / "labels" / f"{i:06d}.png"), expected[i])
    assert (expected == 255).any() and (expected != 255).any()

    saved = json.loads((out / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(manifest))
    assert saved["model"]["sha256"] == state_sha256(model)
    assert saved["strategy"] == {"type": "class_percentile", "percentile": 0.5, "cap": 0.9}
    assert saved["images"]["count"] == len(ds) and saved["images"]["dataset"] == "fake-seg"
    kept = [np.mean(expected[pred == c] != 255) for c in range(3)]
    np.testing.assert_allclose(saved["kept_ratio"]["per_class"], kept)
    np.testing.assert_allclose(saved["kept_ratio"]["overall"], np.mean(expected != 255))
    gt = ds.targets
    for c in range(3):  # diagnostics: precision of kept labels against ground truth (255 skipped)
        sel = (expected == c) & (gt != 255)
        assert saved["precision"]["per_class"][c] == pytest.approx(np.mean(gt[sel] == c))
    assert saved["precision"]["overall"] > saved["precision"]["overall_before_threshold"]
    text = capsys.readouterr().out
    assert "pseudo labels: 6 images" in text and "kept" in text and "precision" in text
    assert not list(out.glob(".work-*"))  # the temporary cache is removed


def test_never_predicted_class_gets_threshold_zero_and_is_reported(tmp_path, capsys):
    ds = seg_dataset()
    ds.images[..., 2] = 0  # blue never dominates
    manifest = generate_pseudo_labels(FixedSeg(), ds, tmp_path, ClassPercentile(), progress=False)
    assert manifest["never_predicted"] == ["b"] and manifest["thresholds"][2] == 0.0
    assert "never predicted (threshold 0): b" in capsys.readouterr().out


def test_recompute_equals_disk_cache_and_output_size(tmp_path):
    ds, model = seg_dataset(n=3), FixedSeg()
    a = generate_pseudo_labels(model, ds, tmp_path / "a", GlobalThreshold(0.8),
                               LabelOptions(output_size=(24, 32), cache="disk"), progress=False, verbose=False)
    b = generate_pseudo_labels(model, ds, tmp_path / "b", GlobalThreshold(0.8),
                               LabelOptions(output_size=(24, 32), cache="recompute"), progress=False, verbose=False)
    assert a["kept_ratio"] == b["kept_ratio"] and a["output_size"] == [24, 32]
    for i in range(3):
        la, lb = (read_index_png(tmp_path / d / "labels" / f"{i:06d}.png") for d in ("a", "b"))
        assert la.shape == (24, 32)
        np.testing.assert_array_equal(la, lb)


def test_datamodule_uses_target_with_eval_transform_and_checkpoint_hash(tmp_path):
    target = seg_dataset(n=4, seed=1, name="tgt")
    dm = DomainAdaptationDataModule(seg_dataset(n=4), target, eval_transform=Augment(train=False, mean=(0, 0, 0),
                                                                                        std=(1, 1, 1)), batch_size=2)
    model = FixedSeg()
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    m = generate_pseudo_labels(FixedSeg(scale=1.0), dm, tmp_path / "pl", GlobalThreshold(0.6), checkpoint=ckpt,
                               progress=False, verbose=False)
    assert m["model"] == {"sha256": file_sha256(ckpt), "source": str(ckpt)}
    pred, conf = reference_predictions(model, target)  # the checkpoint's weights (scale 4) were used
    expected = np.where(quantized(conf) >= 0.6, pred, 255)
    np.testing.assert_array_equal(read_index_png(tmp_path / "pl" / "labels" / "000000.png"), expected[0])


def test_classification_table(tmp_path):
    ds, model = cls_dataset(), FixedCls()
    m = generate_pseudo_labels(model, ds, tmp_path, ClassPercentile(0.5, cap=None), LabelOptions(batch_size=16), progress=False,
                               verbose=False)
    pred, conf = reference_predictions(model, ds)
    thr = np.asarray(m["thresholds"])
    with open(tmp_path / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(len(ds)))
    labels = np.array([int(r["label"]) for r in rows])
    np.testing.assert_array_equal(labels, np.where(quantized(conf) >= thr[pred], pred, 255))
    np.testing.assert_allclose([float(r["confidence"]) for r in rows], conf, atol=2e-5)
    assert m["unit"] == "samples" and 0.4 <= m["kept_ratio"]["overall"] <= 0.7
    assert json.loads((tmp_path / "manifest.json").read_text())["task"] == "classification"


def test_task_mismatch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="task 'classification'"):
        generate_pseudo_labels(FixedSeg(), seg_dataset(), tmp_path, task="classification", progress=False)


def test_interrupted_regeneration_is_never_read_as_finished(tmp_path, monkeypatch):
    from domadapt.io import DataError
    from domadapt.pseudo import generate as gen
    from domadapt.pseudo.dataset import PseudoLabelled

    out = tmp_path / "pl"
    generate_pseudo_labels(FixedSeg(), seg_dataset(n=6), out, progress=False, verbose=False)
    PseudoLabelled(seg_dataset(n=6), out).setup()  # finished set: readable
    calls = []

    def dying_write(path, array):
        calls.append(path)
        if len(calls) > 2:
            raise KeyboardInterrupt  # killed while writing the third label
        return write_png(path, array)

    monkeypatch.setattr(gen, "write_png", dying_write)
    with pytest.raises(KeyboardInterrupt):
        generate_pseudo_labels(FixedSeg(), seg_dataset(n=4), out, progress=False, verbose=False)
    assert not (out / "manifest.json").exists() and not list(out.glob(".work-*"))
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["000000.png", "000001.png"]  # old set removed
    with pytest.raises(DataError, match="unfinished"):
        PseudoLabelled(seg_dataset(n=4), out).setup()


class _SideSeg(torch.nn.Module):
    """A 1x3 convolution with an asymmetric kernel: its output changes when the image is mirrored."""

    task, num_classes = "segmentation", 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, (1, 3), padding=(0, 1))
        with torch.no_grad():
            self.conv.weight.mul_(20)

    def forward(self, x: torch.Tensor):
        return self.conv(x)


def test_hflip_labels_with_the_mean_of_image_and_mirror_probabilities(tmp_path):
    ds, model = seg_dataset(n=3), _SideSeg()
    m = generate_pseudo_labels(model, ds, tmp_path / "f", GlobalThreshold(0.6), LabelOptions(hflip=True), progress=False,
                               verbose=False)
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).double() / 255
    with torch.no_grad():
        conv = model.conv.double()
        p = (conv(x).softmax(1) + conv(x.flip(-1)).softmax(1).flip(-1)).numpy() / 2  # reference formula
    expected = np.where(quantized(p.max(1)) >= 0.6, p.argmax(1), 255)
    plain = generate_pseudo_labels(model.float(), ds, tmp_path / "p", GlobalThreshold(0.6), progress=False,
                                   verbose=False)
    assert m["hflip"] is True and plain["hflip"] is False
    labels = np.stack([read_index_png(tmp_path / "f" / "labels" / f"{i:06d}.png") for i in range(3)])
    assert np.mean(labels == expected) > 0.999  # float32 vs float64 at bin edges
    assert m["kept_ratio"] != plain["kept_ratio"]  # the mirror changed the labels
