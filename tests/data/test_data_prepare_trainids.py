"""datasets/cityscapes/prepare_trainids.py: output, atomic writes, resuming, and agreement with the adapter."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapter_trees import make_tree

SCRIPT = Path(__file__).resolve().parents[2] / "datasets/cityscapes/prepare_trainids.py"


@pytest.fixture(scope="module")
def prepare():
    spec = importlib.util.spec_from_file_location("prepare_trainids", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writes_trainids_next_to_labelids_and_resumes(prepare, tmp_path, capsys):
    tree = make_tree("cityscapes", tmp_path, n=3, extra_ids=(77,))
    assert prepare.main([str(tmp_path)]) == 0
    outputs = [p.with_name(p.name.replace("_labelIds", "_labelTrainIds")) for p in tree.labels]
    for out, raw in zip(outputs, tree.raws):
        with Image.open(out) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), tree.ref[raw])
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary files left behind
    assert "3 to write" in capsys.readouterr().out

    os.utime(outputs[0], (1, 1))
    outputs[1].unlink()  # as if the run had been interrupted there
    assert prepare.main([str(tmp_path)]) == 0
    assert "2 already converted, 1 to write" in capsys.readouterr().out
    assert outputs[0].stat().st_mtime == 1 and outputs[1].is_file()
    assert prepare.main([str(tmp_path), "--overwrite"]) == 0
    assert outputs[0].stat().st_mtime > 1

    from_ids = tree.make(label_type="labelIds")
    from_trainids = tree.make(label_type="labelTrainIds")
    for i in range(3):
        np.testing.assert_array_equal(from_ids.load_raw(i)[1], from_trainids.load_raw(i)[1])


def test_bad_root(prepare, tmp_path, capsys):
    assert prepare.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}/gtFine: directory not found")
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    assert prepare.main([str(tmp_path)]) == 1
