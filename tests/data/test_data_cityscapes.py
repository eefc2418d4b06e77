"""Cityscapes adapter on the mmseg/datumaro fixtures and on generated trees."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from adapter_trees import CS_TRAINID_OF_ID, FIXTURES, make_tree, reference_lut, write_gray, write_rgb
from domadapt.data import Cityscapes
from domadapt.io import DataError

ROOT = FIXTURES / "cityscapes"
FRANKFURT = "frankfurt/frankfurt_000000_000294"


def _frankfurt_list(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text(f"{FRANKFURT}_leftImg8bit.png\n")
    return str(path)


def _region_border(a: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another value."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return np.any([p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != a for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))],
                  axis=0)


def test_frankfurt_labelids_agree_with_shipped_labeltrainids_except_on_borders(tmp_path):
    ds = Cityscapes(str(ROOT), split="val", list_file=_frankfurt_list(tmp_path))
    image, mask = ds.load_raw(0)
    shipped = np.asarray(Image.open(ROOT / "gtFine/val" / f"{FRANKFURT}_gtFine_labelTrainIds.png"))
    assert image.shape == (128, 256, 3) and mask.shape == shipped.shape
    agree = mask == shipped
    assert agree.mean() >= 0.99
    assert not agree.all()  # the fixture's two files were down-scaled separately (DATASETS.md §7)
    assert _region_border(shipped)[~agree].all()
    assert set(np.unique(mask)) == {0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 255}


def test_frankfurt_mask_is_the_reference_table_applied_to_labelids(tmp_path):
    ds = Cityscapes(str(ROOT), split="val", list_file=_frankfurt_list(tmp_path))
    ids = np.asarray(Image.open(ROOT / "gtFine/val" / f"{FRANKFURT}_gtFine_labelIds.png"))
    np.testing.assert_array_equal(ds.load_raw(0)[1], reference_lut(CS_TRAINID_OF_ID)[ids])


def test_labeltrainids_read_as_is(tmp_path):
    ds = Cityscapes(str(ROOT), split="val", label_type="labelTrainIds", list_file=_frankfurt_list(tmp_path))
    shipped = np.asarray(Image.open(ROOT / "gtFine/val" / f"{FRANKFURT}_gtFine_labelTrainIds.png"))
    np.testing.assert_array_equal(ds.load_raw(0)[1], shipped)


def test_walks_cities_with_arbitrary_frame_numbers():
    ds = Cityscapes(str(ROOT), split="train", label_type="labelTrainIds")
    assert [p.name for p, _ in ds.items] == ["defaultcity_000002_000045_leftImg8bit.png"]
    assert ds.items[0][1].name == "defaultcity_000002_000045_gtFine_labelTrainIds.png"
    test = Cityscapes(str(ROOT), split="test", with_labels=False)
    assert len(test) == 2


def test_labeltrainids_with_foreign_background_value_is_rejected():
    ds = Cityscapes(str(ROOT), split="train", label_type="labelTrainIds")  # datumaro files: 19 = background
    with pytest.raises(DataError, match=r"defaultcity_000002_000045_gtFine_labelTrainIds\.png.*0\.\.18 or 255.*19"):
        ds[0]


def test_without_labels_gtfine_is_not_needed(tmp_path):
    tree = make_tree("cityscapes", tmp_path)
    shutil.rmtree(tmp_path / "gtFine")
    assert len(tree.make(with_labels=False)) == 3
    with pytest.raises(DataError, match=r"gtFine/train: directory not found; expected .*_gtFine_labelIds\.png"):
        tree.make().setup()


def test_missing_label_names_image_and_expected_path(tmp_path):
    tree = make_tree("cityscapes", tmp_path)
    tree.labels[1].unlink()
    with pytest.raises(DataError, match=f"{tree.images[1].name}: no label found; expected {tree.labels[1]}"):
        tree.make().setup()


def test_values_outside_the_table_map_to_ignore(tmp_path):
    tree = make_tree("cityscapes", tmp_path, extra_ids=(40, 200, 254))
    for i in range(3):
        raw, mask = tree.raws[i], tree.make().load_raw(i)[1]
        assert (raw >= 34).any()
        assert (mask[raw >= 34] == 255).all()
        np.testing.assert_array_equal(mask, tree.ref[raw])


def test_size_mismatch_is_an_error_naming_both_sizes(tmp_path):
    tree = make_tree("cityscapes", tmp_path, hw=(24, 32))
    write_gray(tree.labels[0], np.full((20, 30), 7))
    with pytest.raises(DataError, match=r"label is 30x20 \(WxH\) but its image is 32x24"):
        tree.make()[0]


def test_list_file_selects_and_validates(tmp_path):
    tree = make_tree("cityscapes", tmp_path / "cs")
    names = [f"aachen/{p.name}" for p in tree.images]
    good = tmp_path / "list.txt"
    good.write_text(f"leftImg8bit/train/{names[2]}\n\n{names[0]}\n")
    ds = tree.make(list_file=str(good))
    assert [p for p, _ in ds.items] == [tree.images[2], tree.images[0]]
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{names[0]}\naachen/aachen_999999_000001_leftImg8bit.png\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: image .*aachen_999999_000001_leftImg8bit\.png not found"):
        tree.make(list_file=str(bad)).setup()


def test_empty_split_and_bad_arguments(tmp_path):
    (tmp_path / "leftImg8bit" / "val" / "lindau").mkdir(parents=True)
    with pytest.raises(DataError, match=r"leftImg8bit/val: no images found \(empty split\)"):
        Cityscapes(str(tmp_path), split="val").setup()
    with pytest.raises(DataError, match=r"leftImg8bit/train: directory not found"):
        Cityscapes(str(tmp_path), split="train").setup()
    with pytest.raises(ValueError, match="split"):
        Cityscapes(str(tmp_path), split="training")  # type: ignore[arg-type]


def test_images_are_rgb_and_lazy(tmp_path):
    tree = make_tree("cityscapes", tmp_path)
    ds = tree.make()
    assert ds._items is None  # nothing is read before setup()
    write_rgb(tree.images[0], np.zeros((24, 32, 3), np.uint8))
    assert ds.load_raw(0)[0].dtype == np.uint8 and ds.num_classes == 19
