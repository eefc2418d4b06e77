"""The self-training pipeline end to end: BDL's fit -> pseudo-label -> fit -> pseudo-label -> fit chain through
`domadapt pipeline run`, on a tiny model (fast) and with the shipped toy-city recipe (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from domadapt.cli import main
from tests.pipeline.pipeline_toys import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recipes/pipeline/toycity_selftraining.yaml"


@pytest.fixture(autouse=True)
def quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))  # never the user's cache
    torch.set_num_threads(1)


def check_chain(run_dir: Path, fits: list[str], pls: list[str]) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == [fits[0], pls[0], fits[1], pls[1], fits[2]]
    for pl, model in zip(pls, fits):  # each pseudo-label set comes from the previous model's final weights
        manifest = json.loads((run_dir / pl / "pseudo_labels" / "manifest.json").read_text())
        fit = json.loads((run_dir / model / "DONE.json").read_text())
        assert manifest["model"]["sha256"] == fit["outputs"]["model_sha256"]
        assert manifest["strategy"] == {"type": "class_percentile", "percentile": 0.5, "cap": 0.9}
        assert 0.0 < manifest["kept_ratio"]["overall"] <= 1.0
    for fit, pl in zip(fits[1:], pls):
        assert json.loads((run_dir / fit / "DONE.json").read_text())["pseudo_labels"].endswith(f"{pl}/pseudo_labels")
    return summary


def test_tiny_self_training_pipeline_through_the_command(tmp_path, capsys):
    stages = [{"name": "m0", "type": "fit", "config": tiny_recipe()},
              {"repeat": 2, "stages": [
                  {"name": "pl{i}", "type": "pseudo_label", "inputs": {"model": "m{prev}"},
                   "strategy": {"type": "class_percentile", "percentile": 0.5, "cap": 0.9}},
                  {"name": "m{i}", "type": "fit", "config": tiny_recipe(),
                   "inputs": {"pseudo_labels": "pl{i}", "init_from": None}}]}]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 0, "stages": stages}))
    assert main(["pipeline", "run", str(path)]) == 0
    summary = check_chain(tmp_path / "run", ["m0", "m1", "m2"], ["pl1", "pl2"])
    assert all(s["metrics"].get("test/target/miou") is not None for s in summary["stages"] if s["type"] == "fit")
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = max(i for i, line in enumerate(lines) if line.startswith("summary: "))
    assert "m2" in lines[at - 1] and "test/target/miou" in out  # the table's last row, then the summary path
    assert lines[-1] == f"plot: {tmp_path / 'run' / 'summary.png'}"


@pytest.mark.slow
def test_shipped_toycity_pipeline_with_a_tiny_budget(tmp_path):
    small = "{class_path: domadapt.data.ToyCity, init_args: {domain: %s, split: %s, num_images: %d}}"
    overrides = ["--trainer.max_steps=4", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
                 "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=4",
                 f"--data.init_args.sources=[{small % ('source', 'train', 8)}]",
                 f"--data.init_args.target={small % ('target', 'train', 8)}",
                 f"--data.init_args.target_val={small % ('target', 'val', 4)}",
                 f"--data.init_args.source_val={small % ('source', 'val', 4)}"]
    run_dir = tmp_path / "run"
    argv = ["pipeline", "run", str(SHIPPED), "--run-dir", str(run_dir), *[f"--override={o}" for o in overrides]]
    assert main(argv) == 0
    summary = check_chain(run_dir, ["m0", "m1", "m2"], ["pl1", "pl2"])
    assert summary["target_metric"] == "test/target/miou"
    manifest = json.loads((run_dir / "pl1/pseudo_labels/manifest.json").read_text())
    assert manifest["images"]["count"] == 8 and manifest["precision"] is not None  # toy city has ground truth
