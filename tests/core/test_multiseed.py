"""`domadapt fit --seeds`: one run per seed, a mean ± std summary, finished seeds reused."""

import json
import statistics
from pathlib import Path

import pytest

from domadapt.cli import main
from domadapt.multiseed import mean_std, root_dir, split_seeds

ROOT = Path(__file__).resolve().parents[2]


def test_split_seeds_forms():
    assert split_seeds(["fit", "--seeds", "0,1,2", "-c", "x"]) == ([0, 1, 2], ["fit", "-c", "x"])
    assert split_seeds(["fit", "--seeds=3"]) == ([3], ["fit"])
    assert split_seeds(["fit"]) == (None, ["fit"])
    with pytest.raises(SystemExit, match="comma-separated integers"):
        split_seeds(["fit", "--seeds", "a,b"])


def test_root_dir_from_recipe_and_override():
    recipe = str(ROOT / "recipes/digits/dann.yaml")
    assert root_dir(["fit", "--config", recipe]) == Path("runs/digits/dann")
    assert root_dir(["fit", "--config", recipe, "--trainer.default_root_dir=/x/y"]) == Path("/x/y")


def test_two_seeds_give_summary_and_resume(tmp_path, capsys):
    args = ["fit", "--config", str(ROOT / "recipes/digits/source_only.yaml"), f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=2",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--seeds", "0,1"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "seeds_summary.json").read_text())
    accs = [summary["per_seed"][s]["test/target/acc"] for s in ("0", "1")]
    assert summary["mean"]["test/target/acc"] == pytest.approx(statistics.fmean(accs))
    assert summary["std"]["test/target/acc"] == pytest.approx(statistics.stdev(accs))
    assert (tmp_path / "seed_0" / "checkpoints" / "last.ckpt").exists()
    run = tmp_path / "seed_0" / "logs" / "run"  # what `test` leaves in the run directory
    report = json.loads((run / "metrics.json").read_text())
    assert report["metrics"]["test/target/acc"] == pytest.approx(summary["per_seed"]["0"]["test/target/acc"])
    assert (run / "test_target_confusion_matrix.png").stat().st_size > 0
    assert (run / "metrics.csv").exists() and list(run.glob("events.out.tfevents.*"))
    mtime = (tmp_path / "seed_1" / "final_metrics.json").stat().st_mtime
    assert main(args) == 0  # rerun: both seeds already finished, nothing retrained
    assert (tmp_path / "seed_1" / "final_metrics.json").stat().st_mtime == mtime
    assert "already finished" in capsys.readouterr().out


def test_seeds_only_with_fit(capsys):
    assert main(["test", "--seeds", "0"]) == 2


def test_mean_std_leaves_out_undefined_values():
    # the IoU of a class absent from one seed's test set is NaN (in process) or null (from JSON)
    mean, std = mean_std([0.25, float("nan"), 0.75, None])
    assert mean == pytest.approx(0.5) and std == pytest.approx(statistics.stdev([0.25, 0.75]))
    assert all(v != v for v in mean_std([float("nan"), None]))  # nothing defined: NaN, not a crash
