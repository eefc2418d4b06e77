"""Kill and resume of a whole pipeline (`domadapt pipeline run` in a subprocess): the BDL chain translation
-> translate -> adaptation -> pseudo labels -> self-training is SIGKILLed inside one of its stages (a
Lightning stage in training or in validation, or the translate / pseudo-label stage after some of its
files are written), the very same command is run again, and every stage's metrics, final weights and
written files equal those of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from domadapt.pipeline.translate import JOURNAL
from tests.core.kill_writes import WRITERS
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
    """``kill``: ``<phase>:<iteration>:<stage>`` for a Lightning stage, ``<translate|pseudo_label>:<N>`` to die
    after that stage's N-th PNG."""
    writes = kill if kill and kill.split(":")[0] in WRITERS else None
    return run_domadapt(["pipeline", "run", str(recipe)], None if writes else kill, kill_writes=writes)


def killed_stage(kill: str) -> str:
    parts = kill.split(":")
    return {"translate": "translate", "pseudo_label": "pl1"}.get(parts[0]) or parts[2]


def written_files(run_dir: Path) -> dict[str, bytes]:
    """The translated dataset and the pseudo labels, byte for byte."""
    return {str(p.relative_to(run_dir)): p.read_bytes()
            for stage in ("translate", "pl1") for p in sorted((run_dir / stage).rglob("*.png")) if p.is_file()}


def outcome(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    weights = {s: torch.load(run_dir / s / "final.ckpt", map_location="cpu", weights_only=True)["state_dict"]
               for s in ("translation", "m0", "m1")}
    metrics = {s["name"]: per_step(s["metrics"]) for s in summary["stages"]}
    return {"weights": weights, "metrics": metrics, "files": written_files(run_dir)}


@pytest.mark.parametrize("kill", ["train:3:translation", "translate:5", "validation:4:m0", "pseudo_label:6",
                                  "train:5:m1"])
def test_killed_pipeline_resumes_to_the_uninterrupted_result(kill, tmp_path):
    results, stage = {}, killed_stage(kill)
    for label in ("uninterrupted", "killed"):
        recipe = tmp_path / f"{label}.yaml"
        recipe.write_text(yaml.safe_dump(pipeline(tmp_path / label)))
        if label == "killed":
            killed = run(recipe, kill)
            assert killed.returncode == -9, killed.stderr[-2000:]
            assert not (tmp_path / label / stage / "DONE.json").exists()
            if stage in ("translate", "pl1"):  # died mid-stage: some files written, the set not finished
                assert list((tmp_path / label / stage).rglob("*.png"))
                assert not list((tmp_path / label / stage).rglob("manifest.json"))
        done = run(recipe)
        assert done.returncode == 0, done.stderr[-3000:]
        results[label] = outcome(tmp_path / label)
    record = json.loads((tmp_path / "killed" / stage / "DONE.json").read_text())
    if stage == "translate":  # it continued with the images not yet written: none translated twice
        journal = (tmp_path / "killed" / "translate" / "translated" / JOURNAL).read_text().splitlines()
        assert sum('"image"' in line for line in journal) == 16
    elif stage != "pl1":
        assert record["resumed_from"] is not None  # it continued from a checkpoint, not from the start
    assert results["killed"]["files"] == results["uninterrupted"]["files"]
    assert len(results["killed"]["files"]) >= 2 * 16  # 16 translated images + 16 label maps at least
    assert_identical({k: v for k, v in results["uninterrupted"].items() if k != "files"},
                     {k: v for k, v in results["killed"].items() if k != "files"}, f"pipeline killed at {kill}")
