"""Kill and resume of a whole pipeline (`domadapt pipeline run` in a subprocess): the BDL chain translation
-> translate -> adaptation -> pseudo labels -> self-training is SIGKILLed inside one of its Lightning stages
(in training or in validation), the very same command is run again, and every stage's metrics and final
weights equal those of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from tests.core.resume_toys import run_domadapt
from tests.core.test_kill_resume import assert_identical, per_step
from tests.pipeline.pipeline_toys import tiny_recipe, tiny_translation_recipe

KILL = {"class_path": "tests.core.resume_toys.KillAt"}
TRANSLATED = ("--data.init_args.sources=[{class_path: domadapt.data.translated.TranslatedDataset, "
              "init_args: {root: '{{translate}}'}}]")


def pipeline(run_dir: Path) -> dict:
    translation, fit = tiny_translation_recipe(8), tiny_recipe(8)  # 16 images / batch 4: 2 epochs, validated at 4 and 8
    for r in (translation, fit):
        r["trainer"]["callbacks"] = [KILL]
    return {"run_dir": str(run_dir), "seed": 0, "overrides": ["--checkpoint_every_n_steps=2"], "stages": [
        {"name": "translation", "type": "fit", "config": translation},
        {"name": "translate", "type": "translate", "inputs": {"generator": "translation"}, "batch_size": 4},
        {"name": "m0", "type": "fit", "config": fit, "overrides": [TRANSLATED]},
        {"name": "pl1", "type": "pseudo_label", "inputs": {"model": "m0"},
         "strategy": {"type": "class_percentile", "percentile": 0.5, "cap": 0.9}},
        {"name": "m1", "type": "fit", "config": fit, "overrides": [TRANSLATED],
         "inputs": {"pseudo_labels": "pl1", "init_from": None}},
    ]}


def run(recipe: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    return run_domadapt(["pipeline", "run", str(recipe)], kill)


def outcome(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    weights = {s: torch.load(run_dir / s / "final.ckpt", map_location="cpu", weights_only=True)["state_dict"]
               for s in ("translation", "m0", "m1")}
    metrics = {s["name"]: per_step(s["metrics"]) for s in summary["stages"]}
    return {"weights": weights, "metrics": metrics}


@pytest.mark.parametrize("kill", ["train:3:translation", "validation:4:m0", "train:5:m1"])
def test_killed_pipeline_resumes_to_the_uninterrupted_result(kill, tmp_path):
    results = {}
    for label in ("uninterrupted", "killed"):
        recipe = tmp_path / f"{label}.yaml"
        recipe.write_text(yaml.safe_dump(pipeline(tmp_path / label)))
        if label == "killed":
            killed = run(recipe, kill)
            assert killed.returncode == -9, killed.stderr[-2000:]
            stage = kill.split(":")[2]
            assert not (tmp_path / label / stage / "DONE.json").exists()
        done = run(recipe)
        assert done.returncode == 0, done.stderr[-3000:]
        results[label] = outcome(tmp_path / label)
    stage = kill.split(":")[2]
    record = json.loads((tmp_path / "killed" / stage / "DONE.json").read_text())
    assert record["resumed_from"] is not None  # it continued from a checkpoint, not from the start
    assert_identical(results["uninterrupted"], results["killed"], f"pipeline killed at {kill}")
