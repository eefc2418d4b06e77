"""`domadapt export`: checkpoints of a `domadapt fit` run and of a plain Trainer become TorchScript / ONNX
files whose probabilities equal the checkpoint's, for every listed method (a translator's file translates images);
missing configs and mismatched classes are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from domadapt.cli import main as cli_main
from domadapt.data.base import ArrayDataset, Transform
from domadapt.export import find_run_config, run_exported
from domadapt.methods import MCD, OutputSpaceAdversarial
from domadapt.models import DigitsNet
from tests.conftest import random_domain, tiny_datamodule, tiny_net
from tests.method_cases import CASES

TOLERANCE = {"torchscript": 1e-5, "onnx": 1e-4}


class RandomClsDomain(ArrayDataset):
    """`tests.conftest.random_domain("classification", ...)` as a class a recipe can name.

    Args:
        n: number of images.
        seed: random seed.
        shift: colour shift.
        transform: see :class:`~domadapt.data.base.DomainDataset`.
        with_labels: see :class:`~domadapt.data.base.DomainDataset`.
        limit: see :class:`~domadapt.data.base.DomainDataset`.
    """

    def __init__(self, n: int = 16, seed: int = 0, shift: float = 0.0, transform: Transform | None = None,
                 with_labels: bool = True, limit: int | None = None) -> None:
        d = random_domain("classification", n, seed, shift=shift)
        super().__init__(d.images, d.targets, d.classes, name=f"cls{seed}-n{n}", transform=transform,
                         with_labels=with_labels, limit=limit)


def _domain(seed: int, shift: float = 0.0) -> dict:
    return {"class_path": f"{__name__}.RandomClsDomain", "init_args": {"n": 16, "seed": seed, "shift": shift}}


DIGITS_NET = {"class_path": "domadapt.models.DigitsNet", "init_args": {"num_classes": 4, "num_features": 16}}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A real `domadapt fit` of MCD (two heads, averaged at inference) with an unsupervised-score monitor."""
    root = tmp_path_factory.mktemp("digits_run")
    recipe = {
        "trainer": {"max_steps": 8, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False, "num_sanity_val_steps": 0, "limit_val_batches": 1,
                    "val_check_interval": 1, "log_every_n_steps": 1},
        "model": {"class_path": "domadapt.methods.MCD",
                  "init_args": {"net": DIGITS_NET, "num_k": 1, "lr": 0.05, "validators": ["entropy", "agreement"]}},
        "data": {"class_path": "domadapt.data.DomainAdaptationDataModule",
                 "init_args": {"sources": [_domain(0)], "target": _domain(1, 30.0), "target_val": _domain(2, 30.0),
                               "batch_size": 8}},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert cli_main(["fit", "--config", str(root / "recipe.yaml"), f"--trainer.default_root_dir={root / 'run'}",
                     "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.monitor=val/target/unsup/entropy",
                     "--trainer.callbacks.mode=min"]) == 0
    return root / "run"


def _reference_mcd(ckpt: Path) -> MCD:
    """The checkpoint's module rebuilt by hand (independently of domadapt.export)."""
    module = MCD(net=DigitsNet(num_classes=4, num_features=16), num_k=1)
    module.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    return module.eval()


def _assert_same_predictions(path: Path, fmt: str, module, x: torch.Tensor, output_size=None) -> None:
    """The file gives the checkpoint's class probabilities: softmax of its evaluation logits, segmentation maps
    upsampled bilinearly (align_corners=True) to ``output_size``."""
    with torch.no_grad():
        ref = module.eval_logits(x).softmax(1)
    if output_size is not None:
        ref = torch.nn.functional.interpolate(ref, size=output_size, mode="bilinear", align_corners=True)
    out = run_exported(path, fmt, x)
    assert out.shape == ref.shape
    assert torch.equal(out.argmax(1), ref.argmax(1))
    assert torch.allclose(out, ref, rtol=0, atol=TOLERANCE[fmt]), (out - ref).abs().max()


def test_cli_monitor_on_an_unsupervised_score_keeps_last_ckpt(digits_run):
    best = list((digits_run / "logs" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert len(best) == 1  # the `--trainer.callbacks+=ModelCheckpoint` of the command line was used
    state = torch.load(best[0], map_location="cpu", weights_only=False)
    assert any("val/target/unsup/entropy" in k for k in state["callbacks"])
    assert (digits_run / "checkpoints" / "last.ckpt").is_file()  # the default last.ckpt saver is still there
    assert find_run_config(best[0]) == find_run_config(digits_run / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_of_a_fit_run_predicts_like_the_checkpoint(digits_run, fmt, tmp_path, capsys):
    ckpt = digits_run / "checkpoints" / "last.ckpt"
    out = tmp_path / f"digits.{fmt}"
    assert cli_main(["export", "--ckpt", str(ckpt), "--format", fmt, "--input-size", "32", "32",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "config.yaml" in printed and "max |exported - checkpoint|" in printed
    torch.manual_seed(1)
    _assert_same_predictions(out, fmt, _reference_mcd(ckpt), torch.randn(5, 3, 32, 32))  # batch 5: dynamic axis


def test_config_of_another_method_is_refused(digits_run, tmp_path, capsys):
    recipe = tmp_path / "other.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"class_path": "domadapt.methods.SourceOnly",
                                                "init_args": {"net": DIGITS_NET}}}))
    code = cli_main(["export", "--ckpt", str(digits_run / "checkpoints" / "last.ckpt"), "--format", "torchscript",
                     "--input-size", "32", "32", "--config", str(recipe), "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "trained as 'domadapt.methods.MCD'" in err and err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


@pytest.fixture(scope="module")
def segmenter_ckpt(tmp_path_factory) -> tuple[Path, OutputSpaceAdversarial]:
    """A plain-Trainer checkpoint (no config.yaml beside it) of a tiny segmenter."""
    root = tmp_path_factory.mktemp("seg")
    module = OutputSpaceAdversarial(net=tiny_net("segmentation"), lr=0.01, adaptation_weight=0.01)
    trainer = pl.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, tiny_datamodule("segmentation"))
    trainer.save_checkpoint(root / "seg.ckpt")
    return root / "seg.ckpt", module.eval()


def test_missing_config_is_a_one_line_error(segmenter_ckpt, capsys):
    ckpt, _ = segmenter_ckpt
    assert cli_main(["export", "--ckpt", str(ckpt), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "no run config.yaml found" in err and "--config" in err and err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_of_a_segmenter_with_an_explicit_config(segmenter_ckpt, fmt, tmp_path):
    ckpt, module = segmenter_ckpt
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": {"class_path": "domadapt.methods.OutputSpaceAdversarial", "init_args": {
        "net": {"class_path": "tests.conftest.TinySegNet", "init_args": {"num_classes": 4}},
        "adaptation_weight": 0.5}}}))  # the checkpoint's 0.01 wins; it does not change the graph anyway
    out = tmp_path / f"seg.{fmt}"
    assert cli_main(["export", "--ckpt", str(ckpt), "--format", fmt, "--config", str(recipe),
                     "--input-size", "32", "48", "--out", str(out)]) == 0
    torch.manual_seed(2)
    _assert_same_predictions(out, fmt, module, torch.randn(3, 3, 32, 48))
    # at the label's size: the probabilities upsampled once, as validation scores them
    assert cli_main(["export", "--ckpt", str(ckpt), "--format", fmt, "--config", str(recipe),
                     "--input-size", "32", "48", "--output-size", "64", "96", "--out", str(out)]) == 0
    _assert_same_predictions(out, fmt, module, torch.randn(3, 3, 32, 48), output_size=(64, 96))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_listed_module_exports_its_prediction_path(case, tmp_path, capsys):
    """Each method's class probabilities, a translator's source -> target generator (its ``translate``): the
    TorchScript file `domadapt export` writes computes what the module does, on another batch size than it traced."""
    module = case.build()
    ckpt, recipe, out = tmp_path / "m.ckpt", tmp_path / "recipe.yaml", tmp_path / "m.pt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    recipe.write_text(yaml.safe_dump({"model": case.recipe_model()}))
    size = case.example(1).shape[2:]
    assert cli_main(["export", "--ckpt", str(ckpt), "--format", "torchscript", "--config", str(recipe),
                     "--input-size", *map(str, size), "--out", str(out)]) == 0, capsys.readouterr().err
    torch.manual_seed(3)
    x = case.example(5)
    expected = case.predict(module, x)
    got = run_exported(out, "torchscript", x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=0, atol=TOLERANCE["torchscript"]), (got - expected).abs().max()


def test_export_help():
    with pytest.raises(SystemExit) as e:
        cli_main(["export", "--help"])
    assert e.value.code == 0
