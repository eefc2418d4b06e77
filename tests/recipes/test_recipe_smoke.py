"""Every recipe under recipes/ runs end to end (`domadapt smoke`), found by listing, so a new recipe is run the day it
is added: embedded recipes at their own resolution, real-data recipes on a synthesised official-format tree at 1/16
of their resolution. A few optimiser steps per stage; every stage of a pipeline runs, in order, on the artifacts of
the stages before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domadapt.data.synth import SYNTH_NAMES
from domadapt.recipes import list_recipes, uses_real_data
from domadapt.recipes.smoke import data_environment, smoke_recipe, synthesize_tree

ROOT = Path(__file__).resolve().parents[2]
RECIPES = list_recipes(ROOT / "recipes")
SCALE = 1 / 16  # real-data recipes: GTA5 1280x720 -> 80x45, Cityscapes eval 2048x1024 input 1024x512 -> 64x32
pytestmark = pytest.mark.recipes


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One synthesised $DOMADAPT_DATA tree (all four datasets, 4 images per split) shared by the real-data recipes."""
    return synthesize_tree(tmp_path_factory.mktemp("data"), list(SYNTH_NAMES), images=4, scale=SCALE)


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.relative_to(ROOT / "recipes").as_posix() for p in RECIPES])
def test_recipe_runs_end_to_end(recipe, data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    scale = SCALE if uses_real_data(recipe) else 1.0
    with data_environment(data_root):
        result = smoke_recipe(recipe, tmp_path / "smoke", steps=2, scale=scale)
    _drop_checkpoints(tmp_path / "smoke")
    assert result.ok, result.line() + "\n" + (tmp_path / "smoke/smoke.log").read_text()[-3000:]
    assert result.stages_run == result.stages_total > 0
    summary = json.loads((tmp_path / "smoke/run/summary.json").read_text())
    fits = [s for s in summary["stages"] if s["type"] == "fit"]
    assert fits and all(s["outputs"].get("model_sha256") for s in fits)  # every fit stage saved its final model
    evaluated = [s for s in fits if any(k.startswith(("test/", "fit/val/")) for k in s["metrics"])]
    assert evaluated, "every recipe evaluates a model (its test split, or validation for a translation model)"


def _drop_checkpoints(folder: Path) -> None:
    """Checkpoints of a finished smoke run (ResNet-101 ones are hundreds of MB each; 50+ recipes would fill a disk)."""
    for path in folder.rglob("*.ckpt"):
        path.unlink()


def _independent_tree(root: Path) -> Path:
    """A $DOMADAPT_DATA tree made without domadapt's synthesiser: the shipped GTA5 and SYNTHIA fixture frames (one
    at full size, one with a label a pixel off its image), the mmsegmentation Cityscapes val frame, and Cityscapes
    frames written by the adapter tests' own writers."""
    import shutil

    from tests.data.adapter_trees import CS_IDS, FIXTURES, block_labels, encode_image, make_tree, write_gray, write_rgb

    shutil.copytree(FIXTURES / "gta5", root / "gta5")
    shutil.copytree(FIXTURES / "synthia/RAND_CITYSCAPES", root / "synthia")
    make_tree("cityscapes", root / "cityscapes", n=3, hw=(64, 128))  # train/aachen
    val = FIXTURES / "cityscapes"
    for sub in ("leftImg8bit", "gtFine"):
        shutil.copytree(val / sub / "val/frankfurt", root / "cityscapes" / sub / "val/frankfurt")
    for i in range(2):  # a second val city, frame numbers other than 000019
        raw = block_labels(64, 128, CS_IDS, seed=10 + i)
        stem = f"lindau/lindau_{i:06d}_{1234 + 17 * i:06d}"
        write_rgb(root / f"cityscapes/leftImg8bit/val/{stem}_leftImg8bit.png", encode_image(raw))
        write_gray(root / f"cityscapes/gtFine/val/{stem}_gtFine_labelIds.png", raw)
    return root


def test_bdl_pipelines_run_on_a_tree_made_by_other_means(tmp_path, monkeypatch, capsys):
    """The issue's acceptance command, `domadapt smoke <both BDL pipelines> --data-root DIR`, on files that domadapt's
    synthesiser did not write."""
    from domadapt.cli import main

    monkeypatch.chdir(ROOT)
    data = _independent_tree(tmp_path / "data")
    from domadapt.data.check import main as check

    assert [check([name, str(data / name)]) for name in ("cityscapes", "synthia")] == [0, 0]
    code = main(["smoke", "recipes/bdl/gta5_to_cityscapes.yaml", "recipes/bdl/synthia_to_cityscapes.yaml",
                 "--data-root", str(data), "--scale", str(SCALE), "--images", "2",  # 2 GTA5 / SYNTHIA fixture frames
                 "--work-dir", str(tmp_path / "work")])
    out = capsys.readouterr().out
    _drop_checkpoints(tmp_path / "work")
    assert code == 0, out
    assert out.count("ok   recipes/bdl/") == 2 and "15/15 stages" in out and "2 of 2 recipes ran" in out


@pytest.mark.slow
def test_bdl_gta5_pipeline_at_real_resolution_one_step_per_stage(tmp_path, monkeypatch, capsys):
    """`recipes/bdl/gta5_to_cityscapes.yaml` at scale 1 (GTA5 1914x1052 resized to 1280x720, Cityscapes 2048x1024,
    DeepLabV2-ResNet-101, CycleGAN on 452x452 crops) for one step per stage; prints the peak memory."""
    import resource

    import torch

    monkeypatch.chdir(ROOT)
    data = synthesize_tree(tmp_path / "data", ["gta5", "cityscapes"], images=2, scale=1.0)
    with data_environment(data):
        result = smoke_recipe(ROOT / "recipes/bdl/gta5_to_cityscapes.yaml", tmp_path / "smoke", steps=1, scale=1.0,
                              images=2)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    with capsys.disabled():
        print(f"\n{result.line()}\npeak memory: {peak_rss:.1f} GiB host (process max RSS), {peak_gpu:.1f} GiB GPU")
    assert result.ok, result.line() + "\n" + (tmp_path / "smoke/smoke.log").read_text()[-3000:]
    assert result.stages_run == result.stages_total == 15
