"""Reports: metrics.json round trip, PNG plots, prediction grid pixels, text tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from domadapt.data.catalog import CS19_CLASSES, CS19_PALETTE
from domadapt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from domadapt.evaluation.metrics import MetricSet, iou_per_class
from domadapt.evaluation.reports import (
    format_table,
    plot_confusion_matrix,
    plot_per_class_iou,
    plot_predictions,
    write_metrics,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def _no_temp_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _metric_set() -> MetricSet:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 19, (2, 12, 12), generator=g)
    target[target == 16] = 255  # 'train' absent -> NaN IoU
    noise = torch.randint(0, 16, (2, 12, 12), generator=g)
    preds = torch.where(torch.rand(2, 12, 12, generator=g) < 0.5, target, noise)
    m = MetricSet("segmentation", 19, CS19_CLASSES)
    m.update(preds.masked_fill(preds == 255, 0), target)
    return m


def test_metrics_json_round_trip(tmp_path):
    m = _metric_set()
    values = m.compute()
    path = write_metrics(tmp_path / "run", values, extra={"checkpoint": tmp_path / "last.ckpt", "step": 7},
                         confmat=m.confmat, class_names=m.class_names)
    assert path == tmp_path / "run" / "metrics.json" and _no_temp_files(path.parent)
    doc = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["confusion_matrix"] == m.confmat.tolist()
    assert doc["class_names"] == list(CS19_CLASSES)
    assert doc["checkpoint"] == str(tmp_path / "last.ckpt") and doc["step"] == 7
    iou = iou_per_class(m.confmat).tolist()
    assert np.isnan(iou[16]) and doc["per_class_iou"][16] is None  # NaN is written as null
    assert doc["per_class_iou"][:16] == iou[:16]
    for k, v in values.items():
        assert doc["metrics"][k] == (None if np.isnan(v) else v)
    with pytest.raises(ValueError, match="collides"):
        write_metrics(tmp_path, values, extra={"metrics": 1})


def test_per_class_iou_and_confusion_plots_are_pngs(tmp_path):
    m = _metric_set()
    iou = iou_per_class(m.confmat).tolist()
    assert np.isnan(iou).any()  # the "n/a" path is exercised
    p1 = plot_per_class_iou(iou, CS19_CLASSES, tmp_path / "iou.png", title="GTA5 -> Cityscapes")
    p2 = plot_confusion_matrix(m.confmat, CS19_CLASSES, tmp_path / "cm.png")
    p3 = plot_confusion_matrix(m.confmat.numpy(), CS19_CLASSES, tmp_path / "cm_counts.png", normalize=False)
    big = np.random.default_rng(0).integers(0, 50, (50, 50))  # many classes: no tick labels / cell text
    p4 = plot_confusion_matrix(big, [f"c{i}" for i in range(50)], tmp_path / "cm_big.png")
    for p in (p1, p2, p3, p4):
        w, h = _assert_png(p)
        assert w > 100 and h > 100
    assert _no_temp_files(tmp_path)
    with pytest.raises(ValueError, match="names"):
        plot_per_class_iou(iou, CS19_CLASSES[:5], tmp_path / "bad.png")


def test_prediction_grid_pixels(tmp_path):
    rng = np.random.default_rng(1)
    n, h, w, gap = 2, 6, 8, 4
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    images = (torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255 - mean) / std  # normalised (N, 3, H, W)
    preds = torch.from_numpy(rng.integers(0, 19, (n, h, w)))
    targets = torch.from_numpy(rng.integers(0, 19, (n, h, w)))
    targets[0, 0, 0] = 255
    path = plot_predictions(images, preds, targets, tmp_path / "grid.png", gap=gap)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (n * h + (n - 1) * gap, 3 * w + 2 * gap, 3)
    palette = np.asarray(CS19_PALETTE, np.uint8)
    for i in range(n):
        row = grid[i * (h + gap) : i * (h + gap) + h]
        np.testing.assert_allclose(row[:, :w].astype(int), rgb[i].astype(int), atol=1)  # image (denormalised)
        np.testing.assert_array_equal(row[:, w + gap : 2 * w + gap], palette[preds[i].numpy()])
        gt = row[:, 2 * (w + gap) :]
        expected = palette[targets[i].numpy().clip(0, 18)]
        expected[targets[i].numpy() == 255] = 0  # ignore is black
        np.testing.assert_array_equal(gt, expected)
    assert (grid[:, w : w + gap] == 255).all()  # white separator


def test_prediction_grid_resizes_uint8_images_to_the_mask(tmp_path):
    img = np.full((3, 4, 3), 77, np.uint8)
    mask = np.zeros((6, 8), np.int64)
    grid = np.asarray(Image.open(plot_predictions([img], [mask], [mask], tmp_path / "g.png", gap=2)))
    assert grid.shape == (6, 3 * 8 + 4, 3) and (grid[:, :8] == 77).all()
    with pytest.raises(ValueError, match="preds/targets"):
        plot_predictions([img], [mask], [mask[:5]], tmp_path / "bad.png")


def test_format_table():
    rows = [
        {"method": "source_only", "miou": 0.36612, "val/target/acc": 0.9, "lr": 0.00025, "epochs": 3},
        {"method": "bdl", "miou": float("nan"), "val/target/acc": None, "lr": 2.5e-4, "epochs": 12},
    ]
    cols = ["method", "miou", "val/target/acc", "lr", "epochs"]
    lines = format_table(rows, cols).splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    cells = [line.split() for line in lines]
    assert cells[0] == cols
    assert cells[2] == ["source_only", "36.6", "90.0", "0.00025", "3"]  # metrics as % with 1 decimal
    assert cells[3] == ["bdl", "n/a", "n/a", "0.00025", "12"]
    # numeric columns are right-aligned: every line ends each numeric cell at the same column
    end = lines[0].index("miou") + len("miou")
    assert lines[2][:end].endswith("36.6") and lines[3][:end].endswith("n/a")
    # explicit metric columns override the name rule
    assert format_table(rows[:1], ["lr"], percent={"lr"}).splitlines()[2].strip() == "0.0"
