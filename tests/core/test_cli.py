"""The `domadapt` command: help, recipes parse with no data on disk, clear recipe errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from domadapt.cli import main
from domadapt.recipes import list_recipes

ROOT = Path(__file__).resolve().parents[2]
ALL = [p.relative_to(ROOT / "recipes").as_posix() for p in list_recipes(ROOT / "recipes")]  # cards/ are not recipes
# Pipeline recipes (a list of `stages`) are run by `domadapt pipeline run`, checked in tests/pipeline.
PIPELINES = [r for r in ALL if "stages" in (yaml.safe_load((ROOT / "recipes" / r).read_text()) or {})]
RECIPES = [r for r in ALL if r not in PIPELINES]


def test_there_are_recipes():
    assert "digits/source_only.yaml" in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_prints_its_config_without_data(recipe, capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(ROOT / "recipes" / recipe), "--print_config"])
    assert e.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["class_path"].startswith(("domadapt.methods.", "tests."))
    assert "data" in cfg and "trainer" in cfg


@pytest.mark.parametrize("recipe", ALL)
def test_every_recipe_names_paper_or_expectation_in_header(recipe):
    head = (ROOT / "recipes" / recipe).read_text().split("\n", 8)[:8]
    assert any(line.startswith("#") for line in head), "recipes start with a header comment"


def test_unknown_recipe_key_is_a_clear_error(tmp_path, capsys):
    bad = yaml.safe_load((ROOT / "recipes/digits/source_only.yaml").read_text())
    bad["model"]["init_args"]["learning_rate"] = 0.1  # typo of `lr`
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(path), "--print_config"])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert "learning_rate" in err and "Traceback" not in err


SEG_RECIPE = str(ROOT / "recipes/segmentation/gta5_to_cityscapes_source_only.yaml")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]


@pytest.mark.parametrize("value", [None, "/no/such/folder"], ids=["unset", "wrong"])
def test_a_missing_data_root_is_one_line_naming_the_field_and_the_variable(value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./data here
    if value is None:
        monkeypatch.delenv("DOMADAPT_DATA", raising=False)
    else:
        monkeypatch.setenv("DOMADAPT_DATA", value)
    monkeypatch.delenv("DOMADAPT_TRACEBACK", raising=False)
    assert main(["fit", "--config", SEG_RECIPE]) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("domadapt: error: data.init_args.sources[0].init_args.root: dataset root")
    assert ("DOMADAPT_DATA is unset, so ./data was used" if value is None else "DOMADAPT_DATA=/no/such/folder") in line


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """Empty dataset roots (enough for the checks made before anything is built) and no internet."""
    import torch

    for name in ("gta5", "cityscapes"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("DOMADAPT_DATA", str(tmp_path))
    monkeypatch.delenv("DOMADAPT_TRACEBACK", raising=False)

    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    return tmp_path


def test_weights_that_cannot_be_downloaded_are_one_line_then_the_traceback_on_request(data_dirs, monkeypatch, capsys):
    assert main(["fit", "--config", SEG_RECIPE]) == 1
    err = capsys.readouterr().err
    (line,) = _error_lines(err)
    assert "could not download ImageNet weights for resnet101" in line and "pass its local path instead" in line
    assert "Union" not in err and "Namespace" not in err and "Downloading" not in err
    from domadapt.errors import RecipeError

    with pytest.raises(RecipeError, match="could not download"):
        main(["--verbose", "fit", "--config", SEG_RECIPE])


def test_weights_null_on_the_command_line_means_no_weights(data_dirs):
    from domadapt.cli import run_lightning

    cli = run_lightning(["--config", SEG_RECIPE, "--model.init_args.net.init_args.weights=null"], run=False)
    assert type(cli.model.net).__name__ == "DeepLabV2"  # built with random weights, nothing downloaded


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("fit", "validate", "test", "predict", "data", "demo", "export", "smoke"):
        assert word in out


def test_python_dash_m_is_the_same_command():
    r = subprocess.run([sys.executable, "-m", "domadapt", "data", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "data check" in r.stdout


def test_data_unknown_subcommand():
    assert main(["data", "frobnicate"]) == 2


DEEPLAB_RECIPES = [r for r in RECIPES if r.startswith("segmentation/")
                   and "domadapt.models.DeepLabV2" in (ROOT / "recipes" / r).read_text()]  # SegFormer ones have no Caffe init


@pytest.mark.parametrize("recipe", DEEPLAB_RECIPES)
def test_the_official_caffe_weights_instructions_of_a_header_resolve_to_the_released_input(recipe, tmp_path):
    """The header's command-line lines for the DeepLab ImageNet+COCO file parse and give the network and every
    transform what the released code feeds it (BGR, 0-255 minus the Caffe mean)."""
    from domadapt.data.transforms import CAFFE_MEAN, CAFFE_STD
    from domadapt.recipes import resolve_args
    from domadapt.recipes.resolve import lookup

    lines = [line[1:].strip() for line in (ROOT / "recipes" / recipe).read_text().splitlines()
             if line.startswith("#   --")]
    args = [a for line in lines for a in line.split() if a.startswith("--")]
    args = [a.replace("/path/to/DeepLab_resnet_pretrained_init-f81d91e8.pth", str(tmp_path / "init.pth")) for a in args]
    expanded = [a.replace(".T.", f".{t}.") for a in args for t in (["train_transform", "target_transform",
                                                                     "eval_transform"] if ".T." in a else [""])]
    cfg = resolve_args(["--config", str(ROOT / "recipes" / recipe), *expanded])
    net = lookup(cfg, "model.init_args.net.init_args")
    assert (net["caffe_style"], net["input_channels"], net["weights"]) == (True, "bgr", str(tmp_path / "init.pth"))
    for t in ("train_transform", "target_transform", "eval_transform"):
        assert lookup(cfg, f"data.init_args.{t}.init_args.mean") == pytest.approx(CAFFE_MEAN, abs=1e-6)
        assert lookup(cfg, f"data.init_args.{t}.init_args.std") == pytest.approx(CAFFE_STD, abs=1e-7)
