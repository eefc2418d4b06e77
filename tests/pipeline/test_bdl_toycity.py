"""The shipped BDL loop on the embedded toy city (`recipes/bdl/toycity.yaml`), end to end (slow: the README's
per-stage table comes from this run; the issue's budget is 20 minutes on 2 quiet cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from domadapt.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes/bdl/toycity.yaml"


@pytest.mark.slow
def test_bdl_toycity_translation_and_self_training_improve(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    torch.set_num_threads(2)
    run_dir = tmp_path / "bdl"
    assert main(["pipeline", "run", str(RECIPE), "--run-dir", str(run_dir),
                 "--override=--trainer.enable_progress_bar=false"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    miou = {s["name"]: s["metrics"].get("test/target/miou") for s in summary["stages"] if s["type"] == "fit"}
    print(capsys.readouterr().out[-3000:])
    # translation + adversarial beats the source-only model (BDL ablation: M0(F1) > M(0))
    assert miou["r1_m0"] > miou["source_only"]
    # every self-training step is at least as good as the model whose pseudo labels it learned from
    for k in (1, 2):
        assert miou[f"r{k}_m1"] >= miou[f"r{k}_m0"] and miou[f"r{k}_m2"] >= miou[f"r{k}_m1"]
    # the perceptual networks: M(0) in round 1, round 1's final segmentation model in round 2
    for stage, net in (("r1_translation", "source_only"), ("r2_translation", "r1_m2")):
        args = json.loads((run_dir / stage / "DONE.json").read_text())["args"]
        assert any(str(run_dir / net / "final.ckpt") in a for a in args)
    assert (run_dir / "summary_table.txt").read_text().splitlines()[0].split()[:3] == ["stage", "type", "test/target/miou"]
