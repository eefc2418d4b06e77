"""DomainNet adapter on split lists written here in the official format (the official lists are not
redistributed) and on the fixture's dummy images stored at official paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from adapter_trees import FIXTURES, write_rgb
from domadapt.data import DomainNet, domainnet_leave_one_out
from domadapt.data.catalog import DOMAINNET_DOMAINS, domainnet_classes
from domadapt.io import DataError

REPO = Path(__file__).resolve().parents[2]
CLASSES = domainnet_classes()


def _root(tmp_path) -> Path:
    root = tmp_path / "domainnet"
    shutil.copytree(FIXTURES / "domainnet", root)
    return root


def _write_list(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))  # LF, trailing newline, no header
    return path


def _line(domain: str, label: int, k: int = 1) -> str:
    return f"{domain}/{CLASSES[label]}/{domain}_{label + 1:03d}_{k:06d}.jpg {label}"


def test_class_order_is_the_shipped_list_not_sorted():
    assert len(CLASSES) == 345 and len(set(CLASSES)) == 345
    assert list(CLASSES) != sorted(CLASSES)
    shipped = (REPO / "datasets/domainnet/classes.txt").read_text().split()
    assert list(CLASSES) == shipped
    assert CLASSES.index("cello") < CLASSES.index("cell_phone")  # sorted() would swap them
    assert DomainNet("x", "real").classes == CLASSES


def test_label_i_is_classes_i_for_every_class(tmp_path):
    root = _root(tmp_path)
    lines = [_line("clipart", i) for i in range(345)]
    lines[0] = "clipart/aircraft_carrier/clipart_001_000018.jpg 0"  # the fixture file (existence check)
    _write_list(root / "clipart_train.txt", lines)
    ds = DomainNet(str(root), "clipart", "train")
    assert [e.label for e in ds.items] == list(range(345))
    assert all(Path(e.path).parent.name == ds.classes[e.label] for e in ds.items)
    sample = ds[0]
    assert sample["label"].item() == 0 and sample["image"].shape == (3, 90, 120)


def test_fixture_images_of_every_domain_load(tmp_path):
    root = _root(tmp_path)
    files = {"clipart": ("train", "clipart/aircraft_carrier/clipart_001_000018.jpg", 0),
             "infograph": ("train", "infograph/aircraft_carrier/infograph_001_000017.jpg", 0),
             "painting": ("train", "painting/syringe/painting_301_000001.jpg", 300),
             "quickdraw": ("test", "quickdraw/aircraft_carrier/5477357336920064.png", 0),
             "real": ("test", "real/zigzag/real_345_000007.jpg", 344),
             "sketch": ("train", "sketch/aircraft_carrier/sketch_001_000040.jpg", 0)}
    for domain, (split, rel, label) in files.items():
        _write_list(root / f"{domain}_{split}.txt", [f"{rel} {label}"])
        image, target = DomainNet(str(root), domain, split).load_raw(0)  # type: ignore[arg-type]
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert target == label and CLASSES[target] == rel.split("/")[1]


def test_painting_lists_with_344_classes_are_accepted(tmp_path):
    root = _root(tmp_path)
    labels = [i for i in range(345) if CLASSES[i] != "t-shirt"]
    lines = ["painting/syringe/painting_301_000001.jpg 300"] + [_line("painting", i, 2) for i in labels]
    _write_list(root / "painting_train.txt", lines)
    ds = DomainNet(str(root), "painting", "train")
    assert len({e.label for e in ds.items}) == 344 and ds.num_classes == 345


@pytest.mark.parametrize("bad, message", [
    ("clipart/airplane/clipart_002_000001.jpg", r"clipart_train\.txt:3: malformed line"),
    ("clipart/airplane/clipart_002_000001.jpg one", r"clipart_train\.txt:3: malformed line"),
    ("clipart/airplane/clipart_002_000001.jpg 345", r"clipart_train\.txt:3: label 345 outside 0\.\.344"),
    ("clipart/airplane/clipart_002_000001.jpg 1000", r"clipart_train\.txt:3: label 1000 outside"),
    ("clipart/airplane/clipart_002_000001.jpg -1", r"clipart_train\.txt:3: label -1 outside"),
    ("clipart/apple/clipart_009_000020.jpg 2", r"clipart_train\.txt:3: label 2 \(alarm_clock\) .* 'apple' = label 8"),
])
def test_bad_lines_name_file_and_line(tmp_path, bad, message):
    root = _root(tmp_path)
    _write_list(root / "clipart_train.txt",
                ["clipart/aircraft_carrier/clipart_001_000018.jpg 0", _line("clipart", 1), bad, _line("clipart", 5)])
    with pytest.raises(DataError, match=message):
        DomainNet(str(root), "clipart").setup()


def test_split_list_search_order_and_error(tmp_path):
    root = _root(tmp_path)
    line = ["sketch/aircraft_carrier/sketch_001_000040.jpg 0"]
    with pytest.raises(DataError) as err:
        DomainNet(str(root), "sketch").setup()
    tried = [str(root / sub / "sketch_train.txt") for sub in ("", "image_list", "splits")]
    assert all(t in str(err.value) for t in tried) and "\n" not in str(err.value)
    _write_list(root / "splits/sketch_train.txt", line)
    assert len(DomainNet(str(root), "sketch")) == 1
    _write_list(root / "image_list/sketch_train.txt", line * 2)  # image_list/ comes before splits/
    assert len(DomainNet(str(root), "sketch")) == 2
    _write_list(tmp_path / "lists/sketch_train.txt", line * 3)
    assert len(DomainNet(str(root), "sketch", list_dir=str(tmp_path / "lists"))) == 3


def test_wrong_root_and_empty_list(tmp_path):
    root = _root(tmp_path)
    _write_list(root / "real_train.txt", [_line("real", 3)])
    with pytest.raises(DataError, match=r"real_train\.txt:1: image .*real_004_000001\.jpg not found"):
        DomainNet(str(root), "real").setup()
    _write_list(root / "real_train.txt", [])
    with pytest.raises(DataError, match=r"real_train\.txt: split list is empty"):
        DomainNet(str(root), "real").setup()
    with pytest.raises(DataError, match=f"{tmp_path / 'nowhere'}: dataset root not found"):
        DomainNet(str(tmp_path / "nowhere"), "real").setup()
    with pytest.raises(ValueError, match="domain"):
        DomainNet(str(root), "photo")  # type: ignore[arg-type]


def test_leave_one_out(tmp_path):
    root = tmp_path / "dn"
    for d in DOMAINNET_DOMAINS:
        for split, label in (("train", 7), ("test", 9)):
            rel = f"{d}/{CLASSES[label]}/{d}_{label + 1:03d}_000001.jpg"
            write_rgb(root / rel, np.full((8, 8, 3), label, np.uint8), fmt="JPEG")
            _write_list(root / f"{d}_{split}.txt", [f"{rel} {label}"])
    sets = domainnet_leave_one_out(str(root), "sketch", limit=1)
    assert [s.domain_name for s in sets["sources"]] == ["clipart", "infograph", "painting", "quickdraw", "real"]
    assert all(s.split == "train" and s.with_labels for s in sets["sources"])
    assert sets["target"].domain_name == "sketch" and sets["target"].split == "train"
    assert "label" not in sets["target"][0]
    assert sets["target_test"].split == "test" and sets["target_test"][0]["label"].item() == 9
    assert sets["sources"][0][0]["label"].item() == 7
    with pytest.raises(ValueError, match="target must be one of"):
        domainnet_leave_one_out(str(root), "photos")
