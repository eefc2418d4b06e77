"""`domadapt smoke` itself: what it shrinks, exactly `--steps` batches per fit stage, one line per recipe, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from domadapt.cli import main
from domadapt.recipes.shrink import Shrink, shrink

ROOT = Path(__file__).resolve().parents[2]


def test_shrink_scales_sizes_caps_batches_limits_datasets_and_replaces_downloads():
    recipe = {"model": {"init_args": {"net": {"init_args": {"weights": "imagenet"}}}},
              "data": {"init_args": {"batch_size": 64, "eval_batch_size": 2, "num_workers": 8,
                                     "eval_transform": {"init_args": {"resize": [512, 1024], "train": False}},
                                     "sources": [{"class_path": "domadapt.data.GTA5", "init_args": {"root": "r"}}],
                                     "train_transform": {"init_args": {"resize": [720, 1280], "crop": [452, 452],
                                                                       "resize_shorter": 256, "scale": [0.5, 1.5]}}}}}
    how = Shrink(images=4, scale=1 / 16)
    out = shrink(recipe, how)
    t = out["data"]["init_args"]["train_transform"]["init_args"]
    assert (t["resize"], t["crop"], t["resize_shorter"], t["scale"]) == ([45, 80], [32, 32], 32, [0.5, 1.5])
    assert out["data"]["init_args"]["eval_transform"]["init_args"] == {"resize": [32, 64], "train": False}
    d = out["data"]["init_args"]
    assert (d["batch_size"], d["eval_batch_size"], d["num_workers"]) == (4, 2, 2)
    assert out["data"]["init_args"]["sources"][0]["init_args"] == {"root": "r", "limit": 4}
    assert out["model"]["init_args"]["net"]["init_args"]["weights"] is None and how.replaced_weights == {"imagenet"}
    assert recipe["data"]["init_args"]["batch_size"] == 64  # the recipe itself is left alone


def test_one_step_is_one_batch_for_every_optimiser_count(tmp_path, capsys):
    """`--steps 1` trains one batch (MCD takes 7 optimiser steps on it), not the whole epoch that Lightning's
    `limit_train_batches=1.0` would mean."""
    recipes = [str(ROOT / "recipes/digits/mcd.yaml"), str(ROOT / "recipes/digits/source_only.yaml")]
    assert main(["smoke", *recipes, "--steps", "1", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:2]] == ["ok", "ok"] and out[2] == "smoke: 2 of 2 recipes ran"
    steps = [json.loads((tmp_path / f"{i:02d}_{n}/run/fit/DONE.json").read_text())["global_step"]
             for i, n in enumerate(["mcd", "source_only"])]
    assert steps == [7, 1]


def test_a_failing_recipe_is_one_line_naming_the_stage_and_exit_1(tmp_path, capsys):
    bad = yaml.safe_load((ROOT / "recipes/digits/source_only.yaml").read_text())
    bad["model"]["init_args"]["net"]["init_args"]["weights"] = str(tmp_path / "missing.pth.txt")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["smoke", str(path), "--work-dir", str(tmp_path / "w")]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("FAIL ") and "0/1 stages" in line and "stage fit:" in line and "missing.pth.txt" in line


@pytest.mark.parametrize("args", [["no/such/recipe.yaml"], ["recipes/digits/dann.yaml", "--steps", "0"],
                                  ["recipes/digits/dann.yaml", "--data-root", "/no/such/dir"]])
def test_bad_arguments_exit_2(args, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        main(["smoke", *args])
    assert e.value.code == 2
