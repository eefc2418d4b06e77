"""The translate stage: a CycleGAN fit stage's generator translates the source, a later fit trains on it."""

from __future__ import annotations

import json

import pytest
import torch

from domadapt.pipeline.runner import run_pipeline
from tests.pipeline.pipeline_toys import tiny_recipe, tiny_translation_recipe


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("DOMADAPT_PROGRESS", "0")
    torch.set_num_threads(1)


@pytest.mark.parametrize("source_labels", [True, False], ids=["labelled", "unlabelled-in-the-cyclegan-recipe"])
def test_translate_then_fit_on_the_translated_source(tmp_path, source_labels):
    """The translate stage translates the labelled source even when the CycleGAN recipe reads it without labels
    (as the BDL translation recipes do): the stage used to fail there, days into a real run."""
    run_dir = tmp_path / "run"
    translated_source = ("--data.init_args.sources=[{class_path: domadapt.data.translated.TranslatedDataset, "
                         "init_args: {root: '{{translate1}}'}}]")
    gan_recipe = tiny_translation_recipe()
    gan_recipe["data"]["init_args"]["sources"][0]["init_args"]["with_labels"] = source_labels
    run_pipeline({"run_dir": str(run_dir), "seed": 0, "stages": [
        {"name": "cyclegan1", "type": "fit", "config": gan_recipe},
        {"name": "translate1", "type": "translate", "inputs": {"generator": "cyclegan1"}, "batch_size": 8},
        {"name": "m0", "type": "fit", "config": tiny_recipe(1), "overrides": [translated_source]},
    ]})
    gan = json.loads((run_dir / "cyclegan1/DONE.json").read_text())
    assert not any(k.startswith("test/") for k in gan["metrics"])  # a translation model has no test step
    tr = json.loads((run_dir / "translate1/DONE.json").read_text())
    manifest = json.loads((run_dir / "translate1" / tr["outputs"]["manifest"]).read_text())
    assert manifest["generator"]["sha256"] == gan["outputs"]["model_sha256"]  # that stage's final weights
    assert manifest["num_images"] == 16 and tr["dataset"] == "random0-n16"  # the recipe's source
    fit = json.loads((run_dir / "m0/DONE.json").read_text())
    assert any(str((run_dir / "translate1/translated").resolve()) in a for a in fit["args"])
    assert fit["global_step"] == 2
