"""`domadapt pipeline run RECIPE --seeds A,B`: one pipeline per seed, then mean ± std per stage (table, JSON, plot)."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
import yaml
from PIL import Image

from domadapt.pipeline.runner import main
from domadapt.pipeline.seeds import run_pipeline_seeds
from domadapt.fingerprint import file_sha256
from tests.pipeline.test_pipeline_runner import two_stage


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    torch.set_num_threads(1)


def test_every_seed_runs_in_its_folder_and_the_summary_has_mean_and_std(tmp_path, capsys):
    root = tmp_path / "run"
    summary = run_pipeline_seeds(two_stage(root), [0, 1])
    per_seed = {s: json.loads((root / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)}
    hashes = {s: file_sha256(root / f"seed_{s}" / "adapt" / "final.ckpt") for s in (0, 1)}
    assert hashes[0] != hashes[1]  # the seed reached the Lightning stage
    saved = json.loads((root / "seeds_summary.json").read_text())
    assert saved == json.loads(json.dumps(summary)) and saved["seeds"] == [0, 1]
    fit, pl = saved["stages"]
    values = [per_seed[s]["stages"][0]["metrics"]["test/target/miou"] for s in (0, 1)]
    assert fit["metrics"]["test/target/miou"]["values"] == values
    assert fit["metrics"]["test/target/miou"]["mean"] == pytest.approx(statistics.fmean(values))
    assert fit["metrics"]["test/target/miou"]["std"] == pytest.approx(statistics.stdev(values))
    kept = [per_seed[s]["stages"][1]["metrics"]["pseudo/kept_ratio"] for s in (0, 1)]
    assert pl["metrics"]["pseudo/kept_ratio"]["values"] == kept and "test/target/miou" not in pl["metrics"]
    table = (root / "seeds_table.txt").read_text()
    assert f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}" in table
    assert table in capsys.readouterr().out + "\n"
    for png in (root / "seeds_summary.png", root / "seed_0" / "summary.png"):  # metric per stage, PL per round
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 400

    stamp = (root / "seed_1" / "adapt" / "DONE.json").stat().st_mtime_ns
    again = run_pipeline_seeds(two_stage(root), [0, 1])  # finished seeds are only read
    assert (root / "seed_1" / "adapt" / "DONE.json").stat().st_mtime_ns == stamp
    assert again["stages"] == summary["stages"]


def test_seeds_option_of_the_command(tmp_path, capsys):
    recipe = tmp_path / "p.yaml"
    recipe.write_text(yaml.safe_dump(two_stage(tmp_path / "run")))
    with pytest.raises(SystemExit) as e:
        main(["run", str(recipe), "--seeds", "0,x"])
    assert e.value.code == 2 and "--seeds: expected comma-separated integers, got '0,x'" in capsys.readouterr().err
    assert main(["run", str(recipe), "--seeds", "3"]) == 0
    assert (tmp_path / "run" / "seed_3" / "adapt" / "DONE.json").is_file()
    assert json.loads((tmp_path / "run" / "seeds_summary.json").read_text())["seeds"] == [3]


def test_summary_plot_needs_a_figure(tmp_path):
    from domadapt.pipeline.plots import plot_pipeline_summary

    empty = {"target_metric": "test/target/acc", "stages": [{"name": "a", "type": "fit", "metrics": {}}]}
    assert plot_pipeline_summary(empty, tmp_path / "x.png") is None and not (tmp_path / "x.png").exists()
    one = {"target_metric": "test/target/acc",
           "stages": [{"name": "a", "type": "fit", "metrics": {"test/target/acc": 0.5}}]}
    assert plot_pipeline_summary(one, tmp_path / "y.png") == tmp_path / "y.png"
