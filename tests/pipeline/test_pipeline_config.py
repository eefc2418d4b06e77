"""Pipeline recipes: validation before anything runs (one-line errors naming the stage), expansion, CLI."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import yaml

from domadapt.cli import main
from domadapt.pipeline.config import STAGE_TYPES, PipelineError, expand, load_pipeline
from domadapt.pipeline.options import PseudoLabelOptions, TranslateOptions, parse_options

ROOT = Path(__file__).resolve().parents[2]
RECIPE = str(ROOT / "recipes/toycity/output_adversarial.yaml")
# every shipped pipeline recipe (a YAML with `stages`), wherever it lives under recipes/
PIPELINES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "stages" in (yaml.safe_load(p.read_text()) or {}))


def pipeline(*stages, **top) -> dict:
    return {"run_dir": "unused", "seed": 0, "stages": list(stages), **top}


FIT = {"name": "fit1", "type": "fit", "config": RECIPE}


@pytest.mark.parametrize("stages,match", [
    ([{"name": "pl", "type": "pseudo_label"}, FIT], "stage 'pl' \\(pseudo_label\\): needs a model but no fit stage"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "inputs": {"model": "nope"}}],
     "stage 'pl' .*inputs.model refers to stage 'nope' which does not exist"),
    ([FIT, {"name": "t", "type": "test", "inputs": {"model": "fit2"}}, {**FIT, "name": "fit2"}],
     "stage 't' .*refers to stage 'fit2' which runs later"),
    ([FIT, FIT], "stage 'fit1' \\(fit\\): duplicate stage name"),
    ([FIT, {**FIT, "name": "fit2", "inputs": {"pseudo_labels": "fit1"}}],
     "stage 'fit2' .*inputs.pseudo_labels refers to 'fit1', a fit stage; expected a pseudo_label stage"),
    ([FIT, {**FIT, "name": "fit2", "inputs": {"teacher": "fit1"}}], "stage 'fit2' \\(fit\\): unknown input 'teacher'"),
    ([{"name": "fit1", "type": "fit"}], "stage 'fit1' \\(fit\\): `config` .* is required"),
    ([{"name": "x", "type": "train", "config": RECIPE}], "stage 'x'.type: expected one of fit, test"),
    ([{"name": "a b", "type": "fit"}], "stages\\[0\\].name: expected a folder-safe name"),
    ([{"name": "f", "type": "fit", "config": "does/not/exist.yaml"}], "stage 'f'.config: recipe does/not/exist.yaml"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "strategy": {"type": "median"}}],
     "stage 'pl' \\(pseudo_label\\): strategy.type"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "threshold": 0.9}], "stage 'pl': unknown key 'threshold'"),
    ([FIT, {**FIT, "name": "fit2", "overrides": ["--x={{ghost}}"]}], "stage 'fit2' .*refers to stage 'ghost'"),
    ([FIT, {"name": "tr", "type": "translate"}], "stage 'tr' \\(translate\\): `inputs.generator` .* is required"),
    ([FIT, {"name": "tr", "type": "translate", "inputs": {"generator": "fit1"}, "scale": 2}],
     "stage 'tr': unknown key 'scale' for a translate stage"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "batchsize": 4}], "unknown key 'batchsize' .*did you mean 'batch_size'"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "batch_size": "eight"}],
     "stage 'pl'.batch_size: expected an int, got 'eight'"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "hflip": 1}], "stage 'pl'.hflip: expected true or false, got 1"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "cache": "ram"}],
     "stage 'pl'.cache: expected one of disk, recompute, got 'ram'"),
    ([FIT, {"name": "pl", "type": "pseudo_label", "output_size": [512]}],
     "stage 'pl'.output_size: expected a list of 2 ints or null, got \\[512\\]"),
    ([FIT, {"name": "tr", "type": "translate", "inputs": {"generator": "fit1"}, "direction": "up"}],
     "stage 'tr'.direction: expected one of a2b, b2a, got 'up'"),
    ([{**FIT, "overrides": "--x=1"}], "stage 'fit1'.overrides: expected a list of command-line arguments, got '--x=1'"),
    ([{**FIT, "inputs": ["a"]}], "stage 'fit1'.inputs: expected a mapping of input name -> stage name"),
])
def test_invalid_pipelines_fail_before_running(stages, match):
    with pytest.raises(PipelineError, match=match) as e:
        load_pipeline(pipeline(*stages))
    assert "\n" not in str(e.value)


def test_defaults_model_stage_and_accepts_every_type():
    spec = load_pipeline(pipeline(FIT, {"name": "pl", "type": "pseudo_label"},
                                  {**FIT, "name": "fit2", "inputs": {"pseudo_labels": "pl", "init_from": None}},
                                  {"name": "t", "type": "test"}, {"name": "e", "type": "evaluate"},
                                  {"name": "tr", "type": "translate", "inputs": {"generator": "fit2"},
                                   "batch_size": 2}))
    assert [s.type for s in spec.stages] == ["fit", "pseudo_label", "fit", "test", "evaluate", "translate"]
    assert set(STAGE_TYPES) == {s.type for s in spec.stages}
    assert spec.stage("pl").inputs["model"] == "fit1" and spec.stage("t").inputs["model"] == "fit2"
    assert spec.stage("tr").options == {"batch_size": 2}


def test_options_are_typed_and_round_text_from_repeat_is_an_int():
    opts = parse_options("pseudo_label", {"round": "2", "output_size": [4, 8], "hflip": True}, "stage 'pl'")
    assert opts == PseudoLabelOptions(round=2, output_size=(4, 8), hflip=True)
    assert parse_options("translate", {}, "stage 'tr'") == TranslateOptions()
    spec = load_pipeline(pipeline({**FIT, "name": "m0"}, {"repeat": 2, "stages": [
        {"name": "pl{i}", "type": "pseudo_label", "inputs": {"model": "m{prev}"}, "round": "{prev}"},
        {**FIT, "name": "m{i}", "inputs": {"pseudo_labels": "pl{i}"}}]}))
    assert spec.stage("pl2").options == {"round": "1"}  # the record (fingerprint) keeps the recipe's text


def test_translate_option_defaults_are_translate_datasets():
    from domadapt.pipeline.translate import translate_dataset

    params = inspect.signature(translate_dataset).parameters
    shared = [f for f in dataclasses.fields(TranslateOptions) if f.name in params and f.name != "dataset"]
    assert len(shared) == 6 and all(f.default == params[f.name].default for f in shared)


def test_repeat_expands_rounds():
    stages = expand([{**FIT, "name": "m0"},
                     {"repeat": 2, "stages": [{"name": "pl{i}", "type": "pseudo_label", "inputs": {"model": "m{prev}"}},
                                              {**FIT, "name": "m{i}", "inputs": {"pseudo_labels": "pl{i}"}}]}])
    assert [s["name"] for s in stages] == ["m0", "pl1", "m1", "pl2", "m2"]
    assert stages[3]["inputs"] == {"model": "m1"} and stages[4]["inputs"] == {"pseudo_labels": "pl2"}
    with pytest.raises(PipelineError, match="repeat"):
        expand([{"repeat": 0, "stages": []}])


def test_repeat_first_starts_a_second_chain_from_another_stage():
    body = [{"name": "upl{i}", "type": "pseudo_label", "inputs": {"model": "u{prev}"}},
            {**FIT, "name": "u{i}", "inputs": {"pseudo_labels": "upl{i}", "init_from": "u{prev}"}}]
    stages = expand([{**FIT, "name": "m0"}, {"repeat": 2, "first": {"u0": "m0"}, "stages": body}])
    assert [s["name"] for s in stages] == ["m0", "upl1", "u1", "upl2", "u2"]
    assert stages[1]["inputs"] == {"model": "m0"} and stages[2]["inputs"]["init_from"] == "m0"  # round 1 only
    assert stages[3]["inputs"] == {"model": "u1"} and stages[4]["inputs"]["init_from"] == "u1"
    with pytest.raises(PipelineError, match="repeat.first"):
        expand([{"repeat": 1, "first": ["m0"], "stages": body}])


def test_config_is_found_relative_to_the_pipeline_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.yaml").write_text("trainer: {}\n")
    path = tmp_path / "sub" / "p.yaml"
    path.write_text(yaml.safe_dump(pipeline({"name": "f", "type": "fit", "config": "r.yaml"})))
    monkeypatch.chdir(tmp_path)
    assert load_pipeline(path).stages[0].config == (tmp_path / "sub" / "r.yaml").resolve()


def test_bdl_pipelines_are_shipped():
    names = {p.relative_to(ROOT / "recipes").as_posix() for p in PIPELINES}
    assert {"bdl/toycity.yaml", "bdl/gta5_to_cityscapes.yaml", "bdl/synthia_to_cityscapes.yaml"} <= names


@pytest.mark.parametrize("path", PIPELINES, ids=[p.relative_to(ROOT / "recipes").as_posix() for p in PIPELINES])
def test_shipped_pipelines_validate_and_have_headers(path, capsys):
    assert main(["pipeline", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stages, run_dir" in out and "pl1" in out
    assert path.read_text().startswith("#")


def test_cli_reports_invalid_pipeline_in_one_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pipeline({"name": "pl", "type": "pseudo_label"})))
    assert main(["pipeline", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("domadapt pipeline: stage 'pl'") and "\n" not in err
    assert main(["pipeline", "check", str(tmp_path / "missing.yaml")]) == 2


def test_help_mentions_pipeline(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "pipeline" in capsys.readouterr().out
