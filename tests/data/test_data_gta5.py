"""GTA5 adapter: palette-index labels, the size-mismatch rule, list files and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from adapter_trees import CS_TRAINID_OF_ID, FIXTURES, make_tree, reference_lut, write_gta5_label
from domadapt.data import GTA5
from domadapt.io import DataError

ROOT = FIXTURES / "gta5"


def _setup_quietly(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ds.setup()


def test_size_mismatch_is_resized_and_warned_once_never_dropped():
    ds = GTA5(str(ROOT))
    with pytest.warns(UserWarning) as record:
        ds.setup()
    assert len(record) == 1
    assert "1 of 2 labels differ in size" in str(record[0].message)
    assert "00002.png image 95x53, label 96x52" in str(record[0].message)
    assert len(ds) == 2 and ds.size_mismatches == [("00002.png", (95, 53), (96, 52))]
    image, mask = ds.load_raw(1)
    assert image.shape == (53, 95, 3) and mask.shape == (53, 95)
    label = Image.open(ROOT / "labels/00002.png").resize((95, 53), Image.NEAREST)
    np.testing.assert_array_equal(mask, reference_lut(CS_TRAINID_OF_ID)[np.asarray(label)])
    sample = ds[1]
    assert sample["mask"].shape == sample["image"].shape[1:]


def test_labels_are_palette_indices_not_luma():
    ds = _setup_quietly(GTA5(str(ROOT)))
    path = ROOT / "labels/00001.png"
    raw = ds.read_raw_label(path)
    with Image.open(path) as im:
        assert im.mode == "P"
        indices = np.asarray(im)
        luma = np.asarray(im.convert("L"))
        colours = np.asarray(im.convert("RGB"))
        palette = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(raw, indices)
    np.testing.assert_array_equal(palette[raw], colours)  # the index really is what the colour stands for
    assert (luma != indices).mean() > 0.5  # .convert('L') would mis-map most pixels
    assert set(np.unique(raw)) == {0, 1, 7, 8, 9, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    mask = ds.load_raw(0)[1]
    np.testing.assert_array_equal(mask, reference_lut(CS_TRAINID_OF_ID)[indices])
    assert set(np.unique(mask)) == set(range(19)) | {255}


def test_values_outside_the_table_map_to_ignore(tmp_path):
    tree = make_tree("gta5", tmp_path, extra_ids=(34, 99, 255))
    ds = tree.make()
    for i in range(3):
        mask, raw = ds.load_raw(i)[1], tree.raws[i]
        assert (raw >= 34).any() and (mask[raw >= 34] == 255).all()


def test_list_file_with_images_prefix(tmp_path):
    tree = make_tree("gta5", tmp_path / "gta5")
    (tmp_path / "all.txt").write_text("images/00003.png\n00001.png\n")
    ds = tree.make(list_file=str(tmp_path / "all.txt"))
    assert [p.name for p, _ in ds.items] == ["00003.png", "00001.png"]


def test_label_missing_names_image_and_expected_label(tmp_path):
    tree = make_tree("gta5", tmp_path)
    tree.labels[2].unlink()
    with pytest.raises(DataError, match=f"00003.png: no label found; expected {tree.labels[2]}"):
        tree.make().setup()
    assert len(tree.make(with_labels=False)) == 3


def test_missing_labels_dir_and_empty_images_dir(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"images: no images found \(empty split\); expected <root>/images/NNNNN.png"):
        GTA5(str(tmp_path)).setup()
    tree = make_tree("gta5", tmp_path / "g")
    for p in tree.labels:
        p.unlink()
    (tmp_path / "g" / "labels").rmdir()
    with pytest.raises(DataError, match=r"g/labels: directory not found; expected <root>/images/NNNNN.png and "):
        tree.make().setup()


def test_colour_label_is_rejected_not_misread(tmp_path):
    tree = make_tree("gta5", tmp_path)
    Image.open(tree.labels[0]).convert("RGB").save(tree.labels[0])
    with pytest.raises(DataError, match=r"00001.png: expected an 8-bit palette \(P\)"):
        tree.make().load_raw(0)


def test_size_mismatch_found_from_headers_at_setup(tmp_path):
    tree = make_tree("gta5", tmp_path, hw=(24, 32))
    write_gta5_label(tree.labels[0], np.full((25, 33), 7))
    write_gta5_label(tree.labels[2], np.full((23, 32), 26))
    ds = tree.make()
    with pytest.warns(UserWarning, match="2 of 3 labels differ in size"):
        ds.setup()
    assert ds.load_raw(2)[1].shape == (24, 32) and (ds.load_raw(2)[1] == 13).all()
