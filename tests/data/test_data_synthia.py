"""SYNTHIA adapter: 16-bit 3-channel labels, the 19/16/13 label maps, both layouts, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from adapter_trees import FIXTURES, SYNTHIA_TABLE, block_labels, make_tree, write_synthia_label
from domadapt.data import Synthia
from domadapt.data.catalog import CS13_CLASSES, CS16_CLASSES, CS19_CLASSES
from domadapt.io import CorruptSampleError, DataError

RAND = FIXTURES / "synthia" / "RAND_CITYSCAPES"
SEQUENCE = FIXTURES / "synthia" / "labels_segm_dataset"
MAPS = {"19": 0, "16": 1, "13": 2}  # column of SYNTHIA_TABLE


def test_class_channel_is_decoded_not_zero():
    ds = Synthia(str(RAND))
    raw = ds.read_raw_label(ds.items[0][1])
    assert raw.shape == (760, 1280) and raw.dtype == np.uint16
    assert raw.any()
    # ids of the fixture (16, 18, 20 never occur in SYNTHIA-RAND-CITYSCAPES)
    assert set(np.unique(raw)) == set(range(16)) | {17, 19, 21, 22}
    image, mask = ds.load_raw(0)
    assert image.shape == (760, 1280, 3)
    assert set(np.unique(mask)) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18, 255}


@pytest.mark.parametrize("label_map", ["19", "16", "13"])
def test_label_maps_follow_the_datasets_table(tmp_path, label_map):
    raw = np.arange(24 * 25).reshape(24, 25) % 25  # every SYNTHIA id 0..22 plus 23, 24 (outside the table)
    raw[0, :3] = (300, 1000, 65535)  # 16-bit values outside the table
    tree = make_tree("synthia", tmp_path, n=1)
    write_synthia_label(tree.labels[0], raw)
    ds = Synthia(str(tmp_path), label_map=label_map)  # type: ignore[arg-type]
    mask = ds.lut[ds.read_raw_label(tree.labels[0])]
    expected = np.vectorize(lambda v: SYNTHIA_TABLE[v][MAPS[label_map]] if v in SYNTHIA_TABLE else 255)(raw)
    np.testing.assert_array_equal(mask, expected)
    assert ds.classes == {"19": CS19_CLASSES, "16": CS16_CLASSES, "13": CS13_CLASSES}[label_map]
    assert ds.num_classes == int(label_map)
    assert ds.protocol == ("13" if label_map == "13" else "16")
    assert mask[mask != 255].max() == int(label_map) - 1


def test_compact_maps_name_the_same_classes_as_the_19_map():
    for label_map, names in (("16", CS16_CLASSES), ("13", CS13_CLASSES)):
        table = getattr(Synthia, f"ID_TO_TRAINID_{label_map}")
        for synthia_id, compact in table.items():
            assert names[compact] == CS19_CLASSES[Synthia.ID_TO_TRAINID_19[synthia_id]]


def test_eight_bit_label_is_rejected_naming_the_file(tmp_path):
    tree = make_tree("synthia", tmp_path)
    write_synthia_label(tree.labels[1], tree.raws[1], bits=8)
    ds = tree.make()
    with pytest.raises(DataError, match=r"0000001\.png: expected a 16-bit 3-channel .* found 8-bit with 3 channel"):
        ds[1]
    with pytest.raises(DataError, match="expected a 16-bit"):  # not skipped: a wrong folder, not one bad file
        tree.make(skip_corrupt=True)[1]


def test_sequence_layout_with_subfolders():
    ds = Synthia(str(SEQUENCE))
    names = [str(p.relative_to(SEQUENCE / "RGB")) for p, _ in ds.items]
    assert names == ["Stereo_Left/Omni_B/000000.png", "Stereo_Left/Omni_B/000001.png",
                     "Stereo_Left/Omni_F/000000.png", "Stereo_Left/Omni_F/000001.png"]
    assert set(np.unique(ds.load_raw(1)[1])) == {0, 13, 18}  # SYNTHIA road, car, bicycle


def test_bdl_style_list_with_rgb_prefix(tmp_path):
    tree = make_tree("synthia", tmp_path / "s")
    (tmp_path / "train.txt").write_text("RGB/0000002.png\n0000000.png\n")
    ds = tree.make(list_file=str(tmp_path / "train.txt"))
    assert [p.name for p, _ in ds.items] == ["0000002.png", "0000000.png"]


def test_size_mismatch_is_an_error(tmp_path):
    tree = make_tree("synthia", tmp_path, hw=(24, 32))
    write_synthia_label(tree.labels[0], block_labels(20, 32, [3, 8], seed=0))
    with pytest.raises(DataError, match=r"label is 32x20 \(WxH\) but its image is 32x24"):
        tree.make()[0]


def test_truncated_label_is_a_corrupt_sample(tmp_path):
    tree = make_tree("synthia", tmp_path)
    data = tree.labels[0].read_bytes()
    tree.labels[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSampleError, match="0000000.png: corrupt or truncated label"):
        tree.make()[0]
    ds = tree.make(skip_corrupt=True)
    with pytest.warns(UserWarning, match="skipping corrupt sample"):
        sample = ds[0]
    np.testing.assert_array_equal(sample["mask"].numpy(), tree.ref[tree.raws[1]])  # the next sample


def test_bad_label_map():
    with pytest.raises(ValueError, match="label_map"):
        Synthia("x", label_map="15")  # type: ignore[arg-type]
