"""The pipeline runner on a tiny model: stages chain, reruns skip, interrupted fits resume, changes rerun."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from domadapt.pipeline.config import PipelineError
from domadapt.pipeline.runner import run_pipeline
from domadapt.fingerprint import file_sha256
from domadapt.pseudo.writer import read_manifest
from tests.pipeline.pipeline_toys import tiny_recipe


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    torch.set_num_threads(1)


def done(run_dir, stage) -> dict:
    return json.loads((run_dir / stage / "DONE.json").read_text())


def two_stage(run_dir, **fit_extra) -> dict:
    return {"run_dir": str(run_dir), "seed": 0, "stages": [
        {"name": "adapt", "type": "fit", "config": tiny_recipe(), **fit_extra},
        {"name": "pl", "type": "pseudo_label", "strategy": {"type": "class_percentile", "percentile": 0.5, "cap": 0.9}},
    ]}


def test_two_stage_pipeline_runs_and_a_rerun_skips_everything(tmp_path, capsys):
    run_dir = tmp_path / "run"
    summary = run_pipeline(two_stage(run_dir))
    fit, pl = done(run_dir, "adapt"), done(run_dir, "pl")
    assert fit["global_step"] == 4 and fit["start_step"] == 0 and fit["resumed_from"] is None
    assert fit["outputs"]["model_sha256"] == file_sha256(run_dir / "adapt" / "final.ckpt")
    assert 0.0 <= fit["metrics"]["test/target/miou"] <= 1.0
    manifest = read_manifest(run_dir / "pl" / "pseudo_labels")
    assert manifest["model"]["sha256"] == fit["outputs"]["model_sha256"]  # labels of that fit's final weights
    assert manifest["images"]["count"] == 16 and len(list((run_dir / "pl/pseudo_labels/labels").glob("*.png"))) == 16
    assert pl["metrics"]["pseudo/kept_ratio"] == manifest["kept_ratio"]["overall"]
    assert summary["target_metric"] == "test/target/miou"
    assert [s["name"] for s in json.loads((run_dir / "summary.json").read_text())["stages"]] == ["adapt", "pl"]
    table = capsys.readouterr().out
    assert "test/target/miou" in table and "pl_kept" in table

    stamps = {s: (run_dir / s / "DONE.json").stat().st_mtime_ns for s in ("adapt", "pl")}
    versions = sorted(p.name for p in (run_dir / "adapt" / "logs").iterdir())
    again = run_pipeline(two_stage(run_dir))
    assert {s: (run_dir / s / "DONE.json").stat().st_mtime_ns for s in ("adapt", "pl")} == stamps
    assert sorted(p.name for p in (run_dir / "adapt" / "logs").iterdir()) == versions  # no retraining
    assert all(s["skipped"] for s in again["stages"])
    assert "finished earlier, skipped" in capsys.readouterr().out


def test_changed_stage_reruns_it_and_everything_downstream(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_pipeline(two_stage(run_dir))
    before = done(run_dir, "pl")["finished_at"], (run_dir / "pl" / "DONE.json").stat().st_mtime_ns
    run_pipeline(two_stage(run_dir, overrides=["--model.init_args.lr=0.02"]))
    assert "recipe or an input changed" in capsys.readouterr().out
    assert "--model.init_args.lr=0.02" in done(run_dir, "adapt")["args"]
    assert (run_dir / "pl" / "DONE.json").stat().st_mtime_ns != before[1]  # its input changed: regenerated
    assert read_manifest(run_dir / "pl/pseudo_labels")["model"]["sha256"] == \
        done(run_dir, "adapt")["outputs"]["model_sha256"]


def test_interrupted_fit_resumes_from_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    spec = {"run_dir": str(run_dir), "seed": 0, "stages": [{"name": "adapt", "type": "fit", "config": tiny_recipe(2)}]}
    run_pipeline(spec)  # 2 iterations = 4 optimiser steps
    stage = run_dir / "adapt"
    shutil.copy(stage / "final.ckpt", stage / "checkpoints" / "last.ckpt")  # as if killed after step 4
    (stage / "DONE.json").unlink()
    run_pipeline(spec, overrides=["--trainer.max_steps=8"])
    record = done(run_dir, "adapt")
    assert record["resumed_from"] == "checkpoints/last.ckpt"
    assert record["start_step"] == 4 and record["global_step"] == 8  # only the missing steps were trained


def test_self_training_stage_reads_pseudo_labels_and_init_from(tmp_path):
    run_dir = tmp_path / "run"
    spec = two_stage(run_dir)
    spec["stages"] += [
        {"name": "st", "type": "fit", "config": tiny_recipe(1), "inputs": {"pseudo_labels": "pl", "init_from": "adapt"},
         "overrides": ["--model.init_args.lr=0.0", "--model.init_args.discriminator_lr=0.0"]},
        {"name": "ev", "type": "test", "inputs": {"model": "adapt"}},
    ]
    run_pipeline(spec)
    st = done(run_dir, "st")
    assert st["pseudo_labels"].endswith("pl/pseudo_labels") and st["init_from"].endswith("adapt/final.ckpt")
    model_hash = done(run_dir, "adapt")["outputs"]["model_sha256"]  # the DataModule's pseudo_labels argument
    assert any(a.startswith("--data.init_args.pseudo_labels=") and model_hash in a for a in st["args"])
    logs = (run_dir / "st" / "logs").glob("*/metrics.csv")
    assert any("train/loss_pseudo" in p.read_text().splitlines()[0] for p in logs)  # CE on the target labels
    a = torch.load(run_dir / "adapt/final.ckpt", weights_only=False)["state_dict"]
    b = torch.load(run_dir / "st/final.ckpt", weights_only=False)["state_dict"]
    conv = "net.body.0.weight"
    assert torch.equal(a[conv], b[conv])  # lr 0: the weights are exactly those it was initialised from
    ev = done(run_dir, "ev")
    assert ev["metrics"]["test/target/miou"] == pytest.approx(done(run_dir, "adapt")["metrics"]["test/target/miou"])


def _source_only_recipe(num_features: int = 8) -> dict:
    recipe = tiny_recipe()
    recipe["model"] = {"class_path": "domadapt.methods.SourceOnly", "init_args": {
        "net": {"class_path": "tests.conftest.TinySegNet", "init_args": {"num_features": num_features}}, "lr": 0.01}}
    return recipe


def test_init_from_another_method_loads_its_network_and_keeps_the_new_discriminator(tmp_path):
    run_dir = tmp_path / "run"
    run_pipeline({"run_dir": str(run_dir), "seed": 0, "stages": [
        {"name": "so", "type": "fit", "config": _source_only_recipe()},
        {"name": "adapt", "type": "fit", "config": tiny_recipe(1), "inputs": {"init_from": "so"},
         "overrides": ["--model.init_args.lr=0.0"]}]})
    a = torch.load(run_dir / "so/final.ckpt", weights_only=False)["state_dict"]
    b = torch.load(run_dir / "adapt/final.ckpt", weights_only=False)["state_dict"]
    assert not any("discriminator" in k for k in a)
    nets = [k for k in a if k.startswith("net.") and k.endswith("weight")]
    assert nets and all(torch.equal(a[k], b[k]) for k in nets)  # lr 0: the source-only network, unchanged
    assert any(k.startswith("loss.discriminator.") for k in b)  # the adversarial method's own part, trained from its init


def test_init_from_a_network_of_another_shape_names_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(PipelineError, match=r"so/final.ckpt: its network does not match this stage's \(.*size mismatch"):
        run_pipeline({"run_dir": str(run_dir), "seed": 0, "stages": [
            {"name": "so", "type": "fit", "config": _source_only_recipe(num_features=6)},
            {"name": "adapt", "type": "fit", "config": tiny_recipe(1), "inputs": {"init_from": "so"}}]})


def test_a_stage_whose_arguments_do_not_parse_stops_the_run_before_any_training(tmp_path):
    from domadapt.pipeline.config import PipelineError

    run_dir = tmp_path / "run"
    spec = two_stage(run_dir)
    spec["stages"].append({"name": "st", "type": "fit", "config": tiny_recipe(),
                           "overrides": ["--model.init_args.learning_rate=0.1"]})
    with pytest.raises(PipelineError, match="stage 'st' \\(fit\\): its recipe arguments do not parse: .*learning_rate"):
        run_pipeline(spec)
    assert not (run_dir / "adapt" / "DONE.json").exists() and not (run_dir / "adapt" / "logs").exists()


def test_table_metrics_add_columns_to_the_written_table(tmp_path):
    spec = two_stage(tmp_path / "run")
    spec["table_metrics"] = ["test/target/pixel_acc"]
    summary = run_pipeline(spec)
    header, _, row = (tmp_path / "run" / "summary_table.txt").read_text().splitlines()[:3]
    assert header.split()[:4] == ["stage", "type", "test/target/miou", "test/target/pixel_acc"]
    acc = done(tmp_path / "run", "adapt")["metrics"]["test/target/pixel_acc"]
    assert row.split()[3] == f"{100 * acc:.1f}" and summary["table_metrics"] == ["test/target/pixel_acc"]


def test_table_metrics_must_be_a_list_of_names(tmp_path):
    spec = two_stage(tmp_path / "run")
    spec["table_metrics"] = "test/target/pixel_acc"
    with pytest.raises(PipelineError, match="table_metrics: expected a list"):
        run_pipeline(spec)
