"""Distributed evaluation: `domadapt test` with Lightning's DDP strategy on 2 CPU processes (gloo) gives exactly
the 1-process confusion matrices and metrics, on an evaluation set that does not split evenly across the
ranks (no sample duplicated by padding, none dropped)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.core.resume_toys import run_domadapt
from tests.core.test_kill_resume import recipe


@pytest.mark.parametrize("name", ["DANN", pytest.param("OutputSpaceAdversarial", marks=pytest.mark.slow)])
def test_two_process_evaluation_equals_one_process(name, tmp_path):
    cfg = recipe(name, tmp_path / "run")
    cfg["trainer"].update(logger=True, max_steps=cfg["trainer"]["max_steps"] // 3)
    cfg["data"]["init_args"]["target_val"]["init_args"]["n"] = 15  # 8 + 7 across two ranks
    config = tmp_path / "r.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert (fit := run_domadapt(["fit", "--config", str(config)])).returncode == 0, fit.stderr[-2000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    reports = {}
    for devices, extra in ((1, []), (2, ["--trainer.strategy=ddp"])):
        test = run_domadapt(["test", "--config", str(config), "--ckpt_path", str(ckpt), f"--run_name=dev{devices}",
                             f"--trainer.devices={devices}", *extra])
        assert test.returncode == 0, test.stderr[-3000:]
        reports[devices] = json.loads((tmp_path / "run" / "logs" / f"dev{devices}" / "metrics.json").read_text())
    one, two = reports[1], reports[2]
    cm = one["confusion_matrix"]["target"]
    assert sum(map(sum, cm)) == 15 * (1 if name == "DANN" else 32 * 48)  # every sample (pixel) counted once
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert json.dumps({k: v for k, v in two.items() if k.startswith("test/")}, sort_keys=True) == \
        json.dumps({k: v for k, v in one.items() if k.startswith("test/")}, sort_keys=True)
