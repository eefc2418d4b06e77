"""``domadapt data check`` (domadapt.data.check) on the fixture trees and on damaged generated trees."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from adapter_trees import (CS_IDS, FIXTURES, SEGMENTATION_KINDS, SYNTHIA_IDS, block_labels, make_tree, write_gray,
                           write_gta5_label, write_synthia_label)
from domadapt.data.catalog import domainnet_classes
from domadapt.data.check import check_dataset, main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, expected, code", [
    (("cityscapes", FIXTURES / "cityscapes"),
     ["images: 5, labels: 1", "  val: 2 images", "images without label: 4", "size mismatches: 0",
      "     26 car                    -> 13 car", "      1 ego vehicle            -> ignore",
      "values outside the table: 0 values, 0 pixels"], 1),  # labelTrainIds-only frames: no labelIds
    (("cityscapes", FIXTURES / "cityscapes", "--split", "val"), ["images: 2, labels: 1", "images without label: 1"], 1),
    (("gta5", FIXTURES / "gta5"),
     ["images: 2, labels: 2", "images without label: 0", "size mismatches: 1",
      "00002.png: image 95x53, label 96x52", "      9 parking                -> ignore", "resized nearest-neighbour"],
     0),  # the GTA5 adapter resizes such labels: a warning
    (("synthia", FIXTURES / "synthia/RAND_CITYSCAPES"),
     ["images: 2, labels: 2", "     10 pedestrian             -> 11 person",
      "     22 lanemarking            -> ignore"], 0),
    (("synthia", FIXTURES / "synthia/labels_segm_dataset"), ["images: 4, labels: 4", "unreadable files: 0"], 0),
])
def test_fixture_trees(capsys, argv, expected, code):
    got, out, err = _run(capsys, *argv)
    assert got == code, err
    for line in expected:
        assert line in out
    if code:  # the full report, then one error line naming the root and the problem
        assert err.startswith("error: ") and err.count("\n") == 1
        assert f"{argv[1]}: " in err and "images without label" in err


def test_pixel_counts_match_the_label_files():
    report = check_dataset("gta5", str(FIXTURES / "gta5"))
    raw = np.concatenate([np.asarray(Image.open(FIXTURES / f"gta5/labels/0000{i}.png")).ravel() for i in (1, 2)])
    values, counts = np.unique(raw, return_counts=True)
    assert report.value_pixels == dict(zip(values.tolist(), counts.tolist()))


def test_domainnet_lists(capsys, tmp_path):
    classes = domainnet_classes()
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "clipart_train.txt").write_text(
        "clipart/aircraft_carrier/clipart_001_000018.jpg 0\n"
        f"clipart/{classes[5]}/clipart_006_000001.jpg 5\n"
        "clipart/broken_line_without_label.jpg\n"
        f"clipart/{classes[7]}/clipart_008_000001.jpg 345\n")
    (lists / "real_test.txt").write_text("real/zigzag/real_345_000007.jpg 344\n")
    code, out, err = _run(capsys, "domainnet", FIXTURES / "domainnet", "--list-dir", lists)
    assert code == 1
    assert err == (f"error: {lists / 'clipart_train.txt'}: 2 malformed or inconsistent list lines, 1 listed files "
                   "missing; training on this data would fail (see the report above)\n")
    assert "split lists: 2, lines: 5, classes present: 3 of 345" in out
    assert "  clipart_train: 4 lines, 2 classes" in out and "  real_test: 1 lines, 1 classes" in out
    assert "malformed or inconsistent lines: 2" in out
    assert "clipart_train.txt:3: malformed line" in out and "clipart_train.txt:4: label 345 outside" in out
    assert "listed files missing: 1" in out and "clipart_006_000001.jpg (listed at line 2 of clipart_train.txt)" in out
    assert "files decoded: 2 of 2 found" in out
    code, out, err = _run(capsys, "domainnet", FIXTURES / "domainnet", "--list-dir", lists, "--domain", "real")
    assert code == 0 and "split lists: 1, lines: 1" in out and err == ""


@pytest.mark.parametrize("argv, reason", [
    (("gta5", "{tmp}/nowhere"), "nowhere: dataset root not found; expected <root>/images/NNNNN.png"),
    (("synthia", "{tmp}"), "RGB: directory not found"),
    (("cityscapes", "{tmp}", "--split", "val"), "leftImg8bit/val: directory not found"),
    (("domainnet", "{tmp}"), "no DomainNet split list found"),
    (("domainnet", "{tmp}/nowhere"), "nowhere: dataset root not found"),
    (("gta5", "{tmp}", "--split", "train"), "gta5 has no splits"),
])
def test_unreadable_layout_fails_with_one_line(capsys, tmp_path, argv, reason):
    code, out, err = _run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code != 0 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and reason in err


@pytest.mark.parametrize("kind", SEGMENTATION_KINDS)
def test_problems_are_reported_and_counted(capsys, tmp_path, kind):
    tree = make_tree(kind, tmp_path, n=14)
    for label in tree.labels[:12]:  # more than the 10 listed
        label.unlink()
    tree.images[13].write_bytes(b"garbage")
    orphan = tree.labels[13].with_name(tree.labels[13].name.replace("13", "99").replace("14", "99"))
    shutil.copy(tree.labels[12], orphan)
    split = ["--split", "train"] if kind == "cityscapes" else []
    code, out, err = _run(capsys, kind, tmp_path, *split)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path}: 12 images without label, 1 unreadable files;")
    assert "images: 14, labels: 3" in out
    assert "images without label: 12" in out and "  ... and 2 more" in out
    assert "labels without image: 1" in out and orphan.name in out
    assert "unreadable files: 1" in out and tree.images[13].name in out
    code, out, _ = _run(capsys, kind, tmp_path, *split, "--max-images", 2)
    assert code == 1 and "files decoded: 2 of 14 images" in out
    assert "unreadable files: 1" in out  # beyond the limit headers are still read


def test_max_images_limits_decoding_not_the_size_check(capsys):
    code, out, _ = _run(capsys, "gta5", FIXTURES / "gta5", "--max-images", 1)
    assert code == 0
    assert "files decoded: 1 of 2 images" in out
    assert "image/label size mismatches: 1" in out and "00002.png: image 95x53, label 96x52" in out
    zeros = np.count_nonzero(np.asarray(Image.open(FIXTURES / "gta5/labels/00001.png")) == 0)
    assert f"    0 unlabeled              -> ignore               {zeros}\n" in out  # 00001.png only



def test_values_outside_the_table_are_counted(tmp_path):
    tree = make_tree("gta5", tmp_path, n=1, hw=(8, 8))
    raw = np.full((8, 8), 7)
    raw[0, :3] = 40
    raw[1, 0] = 255
    write_gta5_label(tree.labels[0], raw)
    report = check_dataset("gta5", str(tmp_path))
    assert report.outside_table == {40: 3, 255: 1}
    text = report.format()
    assert "values outside the table: 2 values, 4 pixels (mapped to ignore)" in text
    assert "     40 (not in table)         -> ignore" in text


def test_domainnet_corrupt_image_and_max_images(capsys, tmp_path):
    root = tmp_path / "dn"
    shutil.copytree(FIXTURES / "domainnet", root)
    bad = root / "sketch/aircraft_carrier/sketch_001_000040.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    (root / "sketch_train.txt").write_text("sketch/aircraft_carrier/sketch_001_000040.jpg 0\n")
    (root / "sketch_test.txt").write_text("clipart/aircraft_carrier/clipart_001_000018.jpg 0\n")
    code, out, err = _run(capsys, "domainnet", root, "--domain", "sketch")
    assert code == 1 and err.startswith(f"error: {root / 'sketch_train.txt'}: 1 unreadable files;")
    assert "unreadable files: 1" in out and "sketch_001_000040.jpg: corrupt or truncated image" in out
    assert "(listed at line 1 of sketch_train.txt)" in out
    code, out, _ = _run(capsys, "domainnet", root, "--domain", "sketch", "--split", "test", "--max-images", 0)
    assert code == 0 and "files decoded: 0 of 1 found" in out and "unreadable files: 0" in out


@pytest.mark.parametrize("bad_line, shown", [
    ("clipart/aircraft_carrier/no_label_here.jpg", "clipart_train.txt:2: malformed line"),
    ("clipart/zigzag/clipart_346_000001.jpg 345", "clipart_train.txt:2: label 345 outside 0..344"),
    ("clipart/zigzag/clipart_345_000001.jpg 0", "clipart_train.txt:2: label 0 (aircraft_carrier) but the file is in"),
    ("clipart/zigzag/clipart_345_000099.jpg 344", "clipart_345_000099.jpg (listed at line 2 of clipart_train.txt)"),
])
def test_domainnet_bad_list_line_exits_1_naming_the_list(capsys, tmp_path, bad_line, shown):
    root = tmp_path / "dn"
    shutil.copytree(FIXTURES / "domainnet", root)
    good = "clipart/aircraft_carrier/clipart_001_000018.jpg 0"
    (root / "clipart_train.txt").write_text(f"{good}\n{bad_line}\n")
    (root / "clipart_test.txt").write_text(f"{good}\n")
    code, out, err = _run(capsys, "domainnet", root, "--domain", "clipart")
    assert code == 1 and shown in out  # still listed in the report
    assert err.count("\n") == 1 and err.startswith(f"error: {root / 'clipart_train.txt'}: 1 ")
    assert "clipart_test.txt" not in err
    (root / "clipart_train.txt").write_text(f"{good}\n")  # repaired: the same check passes
    assert _run(capsys, "domainnet", root, "--domain", "clipart")[0] == 0


@pytest.mark.filterwarnings("ignore:.*resized nearest-neighbour")
@pytest.mark.parametrize("kind, code", [("cityscapes", 1), ("synthia", 1), ("gta5", 0)])
def test_size_mismatch_fails_where_the_adapter_refuses_it(capsys, tmp_path, kind, code):
    tree = make_tree(kind, tmp_path, n=2, hw=(24, 32))
    smaller = block_labels(20, 32, CS_IDS if kind != "synthia" else SYNTHIA_IDS, seed=5)
    {"cityscapes": write_gray, "gta5": write_gta5_label, "synthia": write_synthia_label}[kind](tree.labels[1], smaller)
    got, out, err = _run(capsys, kind, tmp_path)
    assert got == code, err
    assert "image/label size mismatches: 1" in out
    assert ("image/label size mismatches" in err) == bool(code)
    ds = tree.make()  # what training does with it: the exit status agrees with the adapter
    if code:
        with pytest.raises(ValueError, match="label is 32x20"):
            ds[1]
    else:
        assert ds[1]["mask"].shape == (24, 32)


@pytest.mark.parametrize("kind", SEGMENTATION_KINDS)
def test_harmless_findings_exit_0(capsys, tmp_path, kind):
    tree = make_tree(kind, tmp_path, n=2, extra_ids=(40,))  # raw id 40: outside the table, mapped to ignore
    orphan = tree.labels[1].with_name(tree.labels[1].name.replace("0000", "0099", 1))
    shutil.copy(tree.labels[1], orphan)  # a label without image: never loaded
    code, out, err = _run(capsys, kind, tmp_path)
    assert code == 0 and err == ""
    assert "labels without image: 1" in out and "values outside the table: 1 values" in out


@pytest.mark.parametrize("kind", SEGMENTATION_KINDS)
def test_wrongly_encoded_label_exits_1(capsys, tmp_path, kind):
    """A label the adapter cannot decode by index (RGB colours; 8-bit SYNTHIA) would mis-map or fail."""
    tree = make_tree(kind, tmp_path, n=2)
    if kind == "synthia":
        write_synthia_label(tree.labels[0], tree.raws[0], bits=8)
    else:
        Image.open(tree.labels[0]).convert("RGB").save(tree.labels[0])
    code, out, err = _run(capsys, kind, tmp_path)
    assert code == 1 and "unreadable files: 1" in out and tree.labels[0].name in out
    assert err.startswith(f"error: {tmp_path}: 1 unreadable files;")
