"""``domadapt export``: a trained checkpoint's *evaluation* path as a TorchScript or ONNX file.

The network is not in a checkpoint's hyper-parameters (modules are ignored by ``save_hyperparameters``),
so the module is rebuilt from a config, the way ``domadapt predict --config … --ckpt_path …`` would:

1. the config: ``--config RECIPE``, else the ``config.yaml`` Lightning's ``SaveConfigCallback`` wrote
   beside the run (``<root>/logs/<version>/config.yaml`` for ``<root>/checkpoints/*.ckpt``; a pipeline
   fit stage's ``final.ckpt`` and ``checkpoints/*.ckpt`` are found too);
2. the class is the checkpoint's ``_class_path`` (runs started by ``domadapt fit``) or the config's
   ``model.class_path``; the constructor arguments are the config's ``model.init_args`` (this gives the
   ``net``) overridden by the checkpoint's hyper-parameters (what the weights were trained with);
3. the weights are loaded strictly from ``state_dict``.

The exported graph is the one prediction path, ``module.predict_probabilities(x, output_size)`` in eval mode
(:mod:`domadapt.evaluation.inference`: MCD averages its two classifiers, DRT picks a classifier per sample; a
segmentation net runs at its native output stride, its softmax probabilities upsampled once, bilinearly with
``align_corners=True``, to ``output_size``: the input size unless ``--output-size`` names the label size, e.g.
``1024 2048`` for Cityscapes), ``(N, 3, H, W)`` image -> ``(N, K)`` / ``(N, K, *output_size)`` probabilities. A
translation module (BDL's CycleGAN stage, :class:`~domadapt.methods.Translation`) has no classes: its file is the
source -> target generator, ``module.translate(x)``, ``(N, 3, H, W)`` -> ``(N, 3, H, W)`` images in ``[-1, 1]``. The
image resize of the evaluation transform is not part of the file: feed images at the size the model was evaluated
at. Only the batch dimension is dynamic in ONNX; TorchScript is traced (``torch.jit.trace``), so data-dependent
Python control flow is frozen at the traced input.

Checkpoints are read by :func:`~domadapt.checkpoint_file.read_checkpoint` with ``trusted=True``: a checkpoint that
holds objects beyond tensors and plain types is unpickled, so export only checkpoints you trust.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import nn

from domadapt.checkpoint_file import read_checkpoint
from domadapt.io import read_yaml_mapping

ExportFormat = Literal["torchscript", "onnx"]
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
ONNX_OPSET = 18


class ExportError(ValueError):
    """A checkpoint or config that cannot be exported; the message names the file and what is missing."""


class EvalProbabilities(nn.Module):
    """A module's prediction path as a plain ``nn.Module``:
    ``forward(x) = module.predict_probabilities(x, output_size)``.

    Args:
        module: a :class:`~domadapt.methods.base.DomainAdaptationModule`.
        output_size: ``(H, W)`` of segmentation outputs; ``None`` = the input's size.

    Shape:
        ``(N, C, H, W)`` -> ``(N, K)`` or ``(N, K, *output_size)`` probabilities.
    """

    def __init__(self, module: nn.Module, output_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        if not callable(getattr(module, "predict_probabilities", None)):
            raise ExportError(f"export: {type(module).__name__} has no predict_probabilities(); export covers the "
                              "adaptation methods (DomainAdaptationModule subclasses) and translators (translate())")
        self.module, self.output_size = module, output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.predict_probabilities(x, self.output_size)


class TranslatedImages(nn.Module):
    """A translation module's prediction path as a plain ``nn.Module``: ``forward(x) = module.translate(x)``.

    Args:
        module: an image translator, e.g. :class:`~domadapt.methods.Translation` (source -> target generator).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)`` images in ``[-1, 1]``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.translate(x)


def prediction_path(module: nn.Module, output_size: tuple[int, int] | None = None) -> nn.Module:
    """What an exported file computes, in eval mode: :class:`EvalProbabilities` of an adaptation method, or
    :class:`TranslatedImages` of a module with ``translate()`` (and no classes)."""
    if callable(getattr(module, "translate", None)) and not hasattr(module, "predict_probabilities"):
        return TranslatedImages(module.eval()).eval()
    return EvalProbabilities(module.eval(), output_size).eval()


# --- rebuilding the module -------------------------------------------------------------------------
def find_run_config(ckpt: str | Path) -> Path:
    """The ``config.yaml`` of the run that wrote ``ckpt`` (see the module docstring for where it looks).

    Raises:
        ExportError: none found, or several whose ``model`` sections differ.
    """
    ckpt = Path(ckpt)
    d = ckpt.resolve().parent
    candidates: list[Path] = []
    for root in (d, d.parent):
        candidates += [root / "config.yaml", *sorted(root.glob("logs/*/config.yaml"))]
    found = list(dict.fromkeys(p for p in candidates if p.is_file()))
    if not found:
        raise ExportError(f"{ckpt}: no run config.yaml found beside the checkpoint (looked in {d} and {d.parent}, "
                          "and their logs/*/); pass --config RECIPE")
    models = {yaml.dump(_read_yaml(p).get("model")) for p in found}
    if len(models) > 1:
        raise ExportError(f"{ckpt}: several run configs with different models ({', '.join(map(str, found))}); "
                          "pass --config with the right one")
    return max(found, key=lambda p: p.stat().st_mtime)


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "a YAML mapping with a `model` section", ExportError)


def _load_checkpoint(ckpt: Path) -> dict[str, Any]:
    state = read_checkpoint(ckpt, trusted=True, error=ExportError)
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ExportError(f"{ckpt}: expected a Lightning checkpoint with `state_dict`")
    return state


def build_module(ckpt: str | Path, config: str | Path | None = None) -> tuple[nn.Module, Path]:
    """Rebuild the LightningModule of ``ckpt`` with its weights, in eval mode.

    Args:
        ckpt: Lightning checkpoint of a domadapt method.
        config: recipe / run config with a ``model`` section; ``None`` = :func:`find_run_config`.

    Returns:
        ``(module, config path used)``.

    Raises:
        ExportError: a missing or unreadable file, a config without ``model``, a class mismatch, or
            weights that do not fit the rebuilt module.
    """
    from jsonargparse import ArgumentParser
    import pytorch_lightning as pl

    ckpt = Path(ckpt)
    state = _load_checkpoint(ckpt)
    cfg_path = Path(config) if config is not None else find_run_config(ckpt)
    doc = _read_yaml(cfg_path)
    if "stages" in doc:
        raise ExportError(f"{cfg_path}: a pipeline recipe; pass the recipe of the fit stage that wrote {ckpt.name}")
    spec = doc.get("model")
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ExportError(f"{cfg_path}: expected `model: {{class_path: ..., init_args: {{net: ...}}}}`")
    hparams = dict(state.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None) or spec["class_path"]
    if class_path.rsplit(".", 1)[-1] != str(spec["class_path"]).rsplit(".", 1)[-1]:
        raise ExportError(f"{cfg_path}: model.class_path {spec['class_path']!r} but {ckpt.name} was trained as "
                          f"{class_path!r}; pass the run's own config")
    init_args = {**(spec.get("init_args") or {}),
                 **{k: v for k, v in hparams.items() if not k.startswith("_")}}  # trained values win
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(pl.LightningModule, "model", fail_untyped=False)
    try:
        parsed = parser.parse_object({"model": {"class_path": class_path, "init_args": init_args}})
        module = parser.instantiate_classes(parsed).model
    except Exception as e:  # noqa: BLE001 - jsonargparse / constructor errors, one line
        raise ExportError(f"{cfg_path}: cannot build {class_path} ({' '.join(str(e).split())[:300]})") from None
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as e:
        raise ExportError(f"{ckpt}: the weights do not fit {class_path} built from {cfg_path} "
                          f"({' '.join(str(e).split())[:300]})") from None
    return module.eval(), cfg_path


def input_size_of(config: dict[str, Any]) -> tuple[int, int] | None:
    """The image size the config's evaluation transform produces (its ``crop``, else its ``resize``)."""
    transform = (((config.get("data") or {}).get("init_args") or {}).get("eval_transform") or {})
    args = transform.get("init_args") or {} if isinstance(transform, dict) else {}
    for key in ("crop", "resize"):
        if args.get(key):
            return int(args[key][0]), int(args[key][1])
    return None


# --- writing and checking --------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's deprecation notices of ``torch.jit`` (the format is asked for explicitly);
    TracerWarnings about the traced model itself stay visible."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


def export_module(module: nn.Module, path: str | Path, fmt: ExportFormat, example: torch.Tensor,
                  output_size: tuple[int, int] | None = None) -> Path:
    """Write ``module``'s prediction path (:func:`prediction_path`) to ``path`` atomically.

    Args:
        module: a method with ``predict_probabilities``, or a translator with ``translate`` (put in eval mode here).
        path: output file.
        fmt: ``"torchscript"`` (``torch.jit.trace``) or ``"onnx"`` (``torch.onnx.export``, opset
            :data:`ONNX_OPSET`, input ``image`` / output ``probabilities`` (``translated`` of a translator),
            dynamic batch axis).
        example: ``(N, C, H, W)`` example input (``N >= 2``, so that the batch size is not specialised).
        output_size: ``(H, W)`` of segmentation outputs; ``None`` = the example's size.

    Returns:
        ``path``.
    """
    from domadapt.io import atomic_path

    if fmt not in SUFFIX:
        raise ExportError(f"--format: expected 'torchscript' or 'onnx', got {fmt!r}")
    wrapper = prediction_path(module, output_size)
    # A LightningModule's `trainer` property raises when detached; tracing walks every attribute.
    # Lightning's own to_torchscript() sets this flag for the same reason.
    module._jit_is_scripting = True
    try:
        with torch.no_grad(), _quiet_jit(), atomic_path(path) as tmp:
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(wrapper, (example,), check_trace=False), tmp)
            else:
                _onnx_export(wrapper, example, tmp, type(module).__name__)
            os.chmod(tmp, 0o644)  # mkstemp files are private; a model file is meant to be shared
    finally:
        del module._jit_is_scripting
    return Path(path)


def _onnx_export(wrapper: nn.Module, example: torch.Tensor, path: str, name: str) -> None:
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it; say so before it fails deep inside
    except ImportError:
        raise ExportError("--format onnx needs onnx and onnxscript: pip install 'domadapt[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    try:
        torch.onnx.export(wrapper, (example,), path, input_names=["image"],
                          output_names=["translated" if isinstance(wrapper, TranslatedImages) else "probabilities"],
                          opset_version=ONNX_OPSET, dynamic_shapes={"x": {0: batch}}, dynamo=True,
                          external_data=False, verbose=False)
    except Exception as e:  # noqa: BLE001 - the exporter's many error types, one line (TorchScript may still work)
        raise ExportError(f"torch.onnx.export cannot export {name} ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:300]}); try --format torchscript") from None


def run_exported(path: str | Path, fmt: ExportFormat, x: torch.Tensor) -> torch.Tensor:
    """Probabilities of an exported file on ``x`` (ONNX through onnxruntime, CPU)."""
    if fmt == "torchscript":
        with torch.no_grad(), _quiet_jit():
            return torch.jit.load(str(path), map_location="cpu")(x.cpu())
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: x.cpu().numpy()})[0])


def main(argv: Sequence[str] | None = None) -> int:
    """``domadapt export --ckpt PATH --format {torchscript,onnx} [--out FILE] [--input-size H W] [--output-size H W]
    [--config RECIPE]``."""
    p = argparse.ArgumentParser(prog="domadapt export", description="Export a checkpoint's prediction path (class "
                                "probabilities, as validation, test and pseudo-labelling compute them) as a "
                                "TorchScript or ONNX file and check it against the checkpoint.")
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint of a domadapt method")
    p.add_argument("--format", required=True, choices=sorted(SUFFIX), help="TorchScript (traced) or ONNX")
    p.add_argument("--out", default=None, help="output file (default: the checkpoint's path with .pt / .onnx)")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), default=None,
                   help="image size of the example input (default: the eval transform's crop/resize from the config)")
    p.add_argument("--output-size", nargs=2, type=int, metavar=("H", "W"), default=None,
                   help="segmentation: size of the probability maps, e.g. the label size 1024 2048 for Cityscapes "
                        "(default: the input size)")
    p.add_argument("--config", default=None, help="recipe/config with the `model` section (default: the run's "
                   "config.yaml next to the checkpoint)")
    p.add_argument("--batch-size", type=int, default=2, help="batch of the example input (default: %(default)s)")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        module, cfg_path = build_module(args.ckpt, args.config)
        size = tuple(args.input_size) if args.input_size else input_size_of(_read_yaml(cfg_path))
        if size is None:
            raise ExportError(f"{cfg_path}: the input size is unknown (no eval transform crop/resize); "
                              "pass --input-size H W")
        output_size = tuple(args.output_size) if args.output_size else tuple(size)
        out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(SUFFIX[args.format])
        torch.manual_seed(0)
        example = torch.randn(max(args.batch_size, 2), 3, *size)
        export_module(module, out, args.format, example, output_size)
        check = torch.randn(example.shape[0] + 1, 3, *size)  # another batch size: the batch axis is dynamic
        path_module = prediction_path(module, output_size)
        with torch.no_grad():
            ref = path_module(check)
        try:
            diff = f"{(run_exported(out, args.format, check) - ref).abs().max().item():.3g}"
        except ImportError:
            diff = "not checked (onnxruntime is not installed: pip install 'domadapt[export]')"
    except ExportError as e:
        print(f"domadapt export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.format}, {type(module).__name__} from {cfg_path}, input N x 3 x {size[0]} x {size[1]})")
    what = "translated images" if isinstance(path_module, TranslatedImages) else "probabilities"
    print(f"max |exported - checkpoint| {what} on a random batch of {check.shape[0]}: {diff}")
    return 0


__all__ = ["EvalProbabilities", "ExportError", "TranslatedImages", "build_module", "export_module", "find_run_config",
           "input_size_of", "main", "prediction_path", "run_exported"]
