"""The `domadapt` command: help, recipes parse with no data on disk, clear recipe errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from domadapt.cli import main

ROOT = Path(__file__).resolve().parents[2]
ALL = sorted(p.relative_to(ROOT / "recipes").as_posix() for p in (ROOT / "recipes").rglob("*.yaml"))
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


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("fit", "validate", "test", "predict", "data", "demo", "export"):
        assert word in out


def test_python_dash_m_is_the_same_command():
    r = subprocess.run([sys.executable, "-m", "domadapt", "data", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "data check" in r.stdout


def test_data_unknown_subcommand():
    assert main(["data", "frobnicate"]) == 2
