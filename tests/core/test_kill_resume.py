"""Kill and resume, for every method and translator (found by listing, :mod:`tests.method_cases`): a `domadapt fit`
subprocess is SIGKILLed at a random iteration (in training or in validation), the very same command is run again with
`--ckpt_path last`, and its final weights, optimiser state and metrics must equal those of an uninterrupted run bit
for bit (CPU, one thread). Also: a truncated last.ckpt is reported and the previous checkpoint is used."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from domadapt.checkpointing import CheckpointError, check_checkpoint, resume_checkpoint
from tests.core.resume_toys import run_domadapt
from tests.method_cases import CASES

# 4 source batches an epoch (32 / 8), 3 target batches (24 / 8): the target loader cycles. 3 whole epochs, so
# the last iteration is validated in both runs (a process's last logged values are what it compares).
ITERATIONS = 12
CASE = {str(case): case for case in CASES}


def recipe(name: str, root: Path, workers: int = 0) -> dict:
    case = CASE[name]
    task, (h, w) = case.task, (40, 56) if case.task == "segmentation" else (40, 40)  # cropped to -8

    def domain(n, seed, shift=0.0):
        return {"class_path": "tests.core.resume_toys.ColourDomain",
                "init_args": {"task": task, "n": n, "seed": seed, "shift": shift, "height": h, "width": w}}

    # optimiser steps Lightning counts per batch (manual optimisation: 2 for GANs, 3 + num_k for MCD)
    steps = ITERATIONS * case.build().optimizer_steps_per_batch
    return {
        "seed_everything": 3,
        "checkpoint_every_n_steps": 3,
        "trainer": {"default_root_dir": str(root), "max_steps": steps, "accelerator": "cpu", "devices": 1,
                    "check_val_every_n_epoch": 1, "limit_val_batches": 2, "num_sanity_val_steps": 0,
                    "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
                    "callbacks": [{"class_path": "tests.core.resume_toys.KillAt"}]},
        "model": case.recipe_model(),
        "data": {"class_path": "domadapt.data.DomainAdaptationDataModule", "init_args": {
            "sources": [domain(32, 0)], "target": domain(24, 1, 30.0), "target_val": domain(16, 2, 30.0),
            "train_transform": {"class_path": "domadapt.data.Augment",
                                "init_args": {"hflip": 0.5, "color_jitter": 0.3, "scale": [0.8, 1.2],
                                              "crop": [h - 8, w - 8]}},
            "eval_transform": {"class_path": "domadapt.data.Augment", "init_args": {"train": False, "crop": [h - 8, w - 8]}},
            "batch_size": 8, "num_workers": workers}},
    }


def fit(config: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    return run_domadapt(["fit", "--config", str(config), "--ckpt_path", "last"], kill)


def final_state(root: Path) -> tuple[dict, list, dict]:
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    metrics = json.loads((root / "final_metrics.json").read_text())
    # epoch-averaged training logs only cover the batches since the resume; every other value must match
    return ckpt["state_dict"], ckpt["optimizer_states"], per_step(metrics)


def per_step(metrics: dict) -> dict:
    """Metrics without the epoch aggregates of training logs (``x_epoch``, and ``x`` beside it), which only
    average the batches a process trained on; validation metrics and per-step values stay."""
    return {k: v for k, v in metrics.items() if not k.endswith("_epoch") and f"{k}_epoch" not in metrics}



def assert_identical(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a} != {b}"


RUNS = ([(str(case), "train", 0) for case in CASES]
        + [("DANN", "validation", 0), ("AdvEnt", "validation", 0), ("DANN", "train", 2)])  # 2: DataLoader workers


@pytest.mark.parametrize("name,phase,workers", RUNS, ids=[f"{n}-{p}-workers{w}" for n, p, w in RUNS])
def test_killed_run_resumes_to_the_uninterrupted_result(name, phase, workers, tmp_path):
    at = random.Random(f"{name}-{phase}").randint(4, ITERATIONS - 1)  # a random iteration, fixed per case
    runs = {}
    for label in ("uninterrupted", "killed"):
        root = tmp_path / label
        config = tmp_path / f"{label}.yaml"
        config.write_text(yaml.safe_dump(recipe(name, root, workers)))
        if label == "killed":
            killed = fit(config, kill=f"{phase}:{at}")
            assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL, not a clean exit
            assert resume_checkpoint(root / "checkpoints") is not None, "no checkpoint before the kill"
            assert not (root / "final_metrics.json").exists()
        done = fit(config)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[label] = final_state(root)
    assert any(k.startswith("val/") for k in runs["uninterrupted"][2])
    assert_identical(runs["uninterrupted"], runs["killed"], f"{name} killed in {phase} at iteration {at}")


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path):
    root = tmp_path / "run"
    config = tmp_path / "r.yaml"
    cfg = recipe("SourceOnly", root)
    config.write_text(yaml.safe_dump(cfg))
    assert fit(config).returncode == 0
    last, previous = root / "checkpoints" / "last.ckpt", root / "checkpoints" / "previous.ckpt"
    assert check_checkpoint(previous) == previous  # the one before last is kept
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # e.g. a disk that filled up
    with pytest.raises(CheckpointError, match=r"last\.ckpt: truncated or corrupt checkpoint"):
        check_checkpoint(last)
    with pytest.warns(UserWarning, match=r"resuming from .*previous\.ckpt"):
        assert resume_checkpoint(root / "checkpoints") == previous
    cfg["trainer"]["max_steps"] += 2
    config.write_text(yaml.safe_dump(cfg))
    rerun = fit(config)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "truncated or corrupt checkpoint" in rerun.stderr
    assert torch.load(last, weights_only=True)["global_step"] == cfg["trainer"]["max_steps"]
    last.write_bytes(b"not a checkpoint")  # named explicitly: one line naming the file, exit status 1
    explicit = run_domadapt(["fit", "--config", str(config), "--ckpt_path", str(last)])
    assert explicit.returncode == 1
    assert explicit.stderr.strip().splitlines()[-1].startswith(f"domadapt: error: {last}: truncated or corrupt")
