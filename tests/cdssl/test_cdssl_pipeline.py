"""CDSSL rounds as pipeline stages: fit -> (pseudo-label -> fit) x 2 with a progressive threshold, a growing ρ
and an EMA teacher, through `domadapt pipeline run`; a rerun resumes (skips finished stages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from domadapt.cli import main
from domadapt.pipeline.config import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)


def domain(seed: int, shift: float, n: int) -> dict:
    return {"class_path": "tests.cdssl.cdssl_toys.RandomClsDomain", "init_args": {"n": n, "seed": seed, "shift": shift}}


def tiny_cdssl_recipe(iterations: int = 3) -> dict:
    return {
        "trainer": {"max_steps": iterations, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 1,
                    "limit_test_batches": 1, "log_every_n_steps": 1},
        "model": {"class_path": "domadapt.methods.CDSSL",
                  "init_args": {"net": {"class_path": "domadapt.models.DigitsNet",
                                        "init_args": {"num_classes": 4, "num_features": 16}},
                                "lr": 0.01, "pseudo_targets": "sharpened", "temperature": 0.5, "ema_decay": 0.9}},
        "data": {"class_path": "domadapt.data.self_training.SelfTrainingDataModule",
                 "init_args": {"sources": [domain(0, 0.0, 24)], "target": domain(1, 30.0, 24),
                               "target_val": domain(2, 30.0, 8), "batch_size": 4, "target_batch_size": 4,
                               "style_transfer": {"class_path": "domadapt.data.style_transfer.FourierTransfer",
                                                  "init_args": {"beta": 0.1}},
                               "target_ratio": 0.25, "target_ratio_end": 0.75, "rounds": 2}},
    }


def test_tiny_cdssl_rounds_through_the_command(tmp_path, capsys):
    recipe = tiny_cdssl_recipe()
    stages = [{"name": "m0", "type": "fit", "config": recipe},
              {"repeat": 2, "stages": [
                  {"name": "pl{i}", "type": "pseudo_label", "inputs": {"model": "m{prev}"},
                   "strategy": {"type": "progressive", "start": 0.9, "end": 0.0, "rounds": 2}},
                  {"name": "m{i}", "type": "fit", "config": recipe, "overrides": ["--data.init_args.round={prev}"],
                   "inputs": {"pseudo_labels": "pl{i}", "init_from": "m{prev}"}}]}]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages}))
    assert main(["pipeline", "run", str(path)]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["m0", "pl1", "m1", "pl2", "m2"]
    applied = [json.loads((run / pl / "pseudo_labels/manifest.json").read_text())["strategy"]["applied"]["value"]
               for pl in ("pl1", "pl2")]
    assert applied == pytest.approx([0.9, 0.0])  # strict first (an untrained net keeps nothing), all kept at last
    for i in (1, 2):
        done = json.loads((run / f"m{i}/DONE.json").read_text())
        assert done["pseudo_labels"].endswith(f"pl{i}/pseudo_labels")
        assert done["init_from"].endswith(f"m{i - 1}/final.ckpt")
        assert done["metrics"].get("test/target/acc") is not None
        state = torch.load(run / f"m{i}/final.ckpt", weights_only=False)["state_dict"]
        assert int(state["teacher.num_updates"]) == 3 * (i + 1)  # the teacher carried over across rounds
    assert "self-training sampler: round 1, ρ = 0.75, 24/24 target samples with pseudo labels" in out
    assert main(["pipeline", "run", str(path)]) == 0  # resume: nothing left to do
    assert capsys.readouterr().out.count("finished earlier, skipped") == 5


def test_shipped_digits_pipeline_is_valid():
    spec = load_pipeline(ROOT / "recipes/pipeline/cdssl_digits.yaml")
    assert [s.name for s in spec.stages] == ["m0", "pl1", "m1", "pl2", "m2", "pl3", "m3", "pl4", "m4"]
    assert all(s.options["strategy"]["type"] == "progressive" for s in spec.stages if s.type == "pseudo_label")
    rounds = [[o for o in s.overrides if o.startswith("--data.init_args.round=")] for s in spec.stages
              if s.name in ("m1", "m2", "m3", "m4")]
    assert rounds == [[f"--data.init_args.round={r}"] for r in range(4)]
    assert [s.inputs["init_from"] for s in spec.stages if s.name in ("m1", "m2", "m3", "m4")] == ["m0", "m1", "m2", "m3"]
    assert [s.options["round"] for s in spec.stages if s.type == "pseudo_label"] == ["0", "1", "2", "3"]
    text = (ROOT / "recipes/cdssl/digits.yaml").read_text()
    assert "OUR interpretation" in text and "METHODS.md §4.3" in text
