"""Training under DDP (2 CPU processes, gloo, ``--trainer.strategy=ddp`` as the README writes it): every listed method
and translator ends with the same weights on both ranks,
EMA teachers included (a teacher averages its own rank's student, so it stays in step only if the students do).
Parameters are compared, not buffers: without SyncBatchNorm each rank keeps its own BatchNorm statistics between DDP's
broadcasts of rank 0's buffers, and a CycleGAN image pool holds its own rank's images, as in any DDP run (the
checkpoint holds rank 0's)."""

from __future__ import annotations

import pytest
import torch
import yaml

from domadapt import list_methods, list_translators
from tests.core.resume_toys import run_domadapt
from tests.core.test_kill_resume import recipe

DEFAULT = {"DACS"}  # the method with an EMA teacher, mixing and MIC runs in the default suite; the others are slow


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in [*list_methods(), *list_translators()]])
def test_both_ranks_end_with_the_same_weights(name, tmp_path):
    cfg = recipe(name, tmp_path / "run")
    cfg["trainer"].update(devices=2, strategy="ddp", check_val_every_n_epoch=100,
                          max_steps=cfg["trainer"]["max_steps"] // 2,
                          callbacks=[{"class_path": "tests.core.resume_toys.SaveRankState"}])
    config = tmp_path / "r.yaml"
    config.write_text(yaml.safe_dump(cfg))
    fit = run_domadapt(["fit", "--config", str(config)])
    assert fit.returncode == 0, fit.stderr[-3000:]
    ranks = [torch.load(tmp_path / "run" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), f"{name}: {key} differs between the ranks"
    teacher = {k[len("teacher.module."):]: v for k, v in ranks[0].items() if k.startswith("teacher.module.")}
    if teacher:  # the teacher moved with the student but is not a copy of it
        assert any(not torch.equal(v, ranks[0]["net." + k]) for k, v in teacher.items())
