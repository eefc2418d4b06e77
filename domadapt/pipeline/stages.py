"""What each pipeline stage type does. Every runner gets the stage, its folder and the run context and
returns the record that goes into ``DONE.json`` (``outputs`` with paths relative to the stage folder,
``metrics``, and type-specific facts).

* ``fit`` — ``domadapt fit`` through :func:`domadapt.lightning_cli.run_lightning` (``run=False``, so the runner
  can load ``init_from`` weights before ``trainer.fit``; ``inputs.pseudo_labels`` becomes the DataModule's
  ``pseudo_labels`` argument, a :class:`~domadapt.pseudo.PseudoLabelled` of that folder) with
  ``--trainer.default_root_dir=<stage dir>``; resumes from
  ``checkpoints/last.ckpt`` when an earlier attempt left one; saves ``final.ckpt`` and runs
  ``trainer.test`` on the final weights.
* ``test`` / ``evaluate`` — ``trainer.test`` / ``trainer.validate`` of a fit stage's ``final.ckpt``
  (recipe: the stage's ``config`` or the fit stage's).
* ``pseudo_label`` — rebuilds the fit stage's model, loads its ``final.ckpt`` and calls
  :func:`~domadapt.pseudo.generate_pseudo_labels` on the target training split (into ``labels/``).
* ``translate`` — :func:`domadapt.pipeline.translate.translate_dataset` of a source dataset (with its labels,
  whatever the recipe set ``with_labels`` to) with the
  generator of a fit stage (``inputs.generator``, its ``final.ckpt``) into ``<stage dir>/translated``;
  a later fit stage reads it through an override naming ``{{stage}}`` (e.g. ``sources`` =
  ``TranslatedDataset(root={{translate1}})``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.utilities.model_helpers import is_overridden

from domadapt.checkpoint_file import read_checkpoint
from domadapt.checkpointing import resume_checkpoint
from domadapt.class_path import instantiate
from domadapt.io import atomic_path
from domadapt.models.weights import read_state_dict
from domadapt.pipeline.config import PLACEHOLDER, PipelineError, PipelineSpec, StageSpec
from domadapt.pipeline.options import parse_options
from domadapt import fingerprint

FINAL = "final.ckpt"
LABELS = "pseudo_labels"
TRANSLATED = "translated"


@dataclass
class RunContext:
    """What stages share: the pipeline, finished stages' ``DONE.json`` records, extra CLI overrides."""

    spec: PipelineSpec
    run_dir: Path
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    cli_overrides: list[str] = field(default_factory=list)

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def artifact(self, name: str) -> Path:
        """Absolute path of a finished stage's main artifact (fit: ``final.ckpt``; others: their folder)."""
        record = self.done[name]
        main = record.get("outputs", {}).get("main")
        return (self.stage_dir(name) / main).resolve() if main else self.stage_dir(name).resolve()


# ---------------------------------------------------------------------------------------- helpers
def lightning_args(stage: StageSpec, ctx: RunContext, pending: bool = False) -> list[str]:
    """``--config R --seed_everything S <pipeline overrides> <stage overrides> <CLI overrides>``.

    ``{{stage}}`` placeholders become that stage's artifact path (``pending``: a stand-in path for stages
    that have not run yet, to check that the arguments parse).
    """
    config = stage.config
    if isinstance(config, dict):  # inline recipe: keep a copy in the stage folder for the record
        path = ctx.stage_dir(stage.name) / "recipe.yaml"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False))
        config = path
    overrides = [_fill(o, stage, ctx, pending) for o in [*ctx.spec.overrides, *stage.overrides, *ctx.cli_overrides]]
    return ["--config", str(config), f"--seed_everything={ctx.spec.seed}", *overrides,
            *_pseudo_args(stage, ctx, pending)]


def _pseudo_args(stage: StageSpec, ctx: RunContext, pending: bool) -> list[str]:
    """The DataModule's ``pseudo_labels`` argument from ``inputs.pseudo_labels`` (nothing without that input): a
    :class:`~domadapt.pseudo.PseudoLabelled` of the folder, which must come from the model the stage labelled with."""
    name = stage.inputs.get("pseudo_labels")
    if not name:
        return []
    init = {"pseudo_dir": _fill(f"{{{{{name}}}}}", stage, ctx, pending), "expect_model_hash": None}
    if name in ctx.done:
        init["expect_model_hash"] = ctx.done[ctx.spec.stage(name).model_stage()]["outputs"]["model_sha256"]
    return ["--data.init_args.pseudo_labels=" + json.dumps({"class_path": "domadapt.pseudo.PseudoLabelled",
                                                             "init_args": init})]


def _fill(arg: str, stage: StageSpec, ctx: RunContext, pending: bool) -> str:
    def sub(m):
        if m.group(1) in ctx.done:
            return str(ctx.artifact(m.group(1)))
        if pending:
            return str(ctx.stage_dir(m.group(1)).resolve() / "not-yet-run")
        raise PipelineError(f"stage {stage.name!r}: override {arg!r} names stage {m.group(1)!r}, not finished")

    return PLACEHOLDER.sub(sub, arg)


#: the input whose fit stage lends its recipe to a stage without its own ``config``
RECIPE_INPUT = {"test": "model", "evaluate": "model", "pseudo_label": "model", "translate": "generator"}


def recipe_args(stage: StageSpec, ctx: RunContext, pending: bool = False) -> list[str]:
    """Recipe arguments of ``stage``: its own ``config``, or the recipe and overrides of the fit stage it
    reads (``inputs.model`` / ``inputs.generator``) followed by its own overrides."""
    if stage.type == "fit" or stage.config is not None:
        return lightning_args(stage, ctx, pending)
    source = ctx.spec.stage(stage.inputs[RECIPE_INPUT[stage.type]])
    borrowed = StageSpec(stage.name, source.type, source.config, [*source.overrides, *stage.overrides])
    return lightning_args(borrowed, ctx, pending)


def build_cli(args: list[str], stage_dir: Path, logger: bool = True):
    """Instantiate model, datamodule and trainer from recipe arguments without running anything."""
    from domadapt.lightning_cli import run_lightning

    return run_lightning([*args, *_dir_args(stage_dir, logger)], run=False)


def _dir_args(stage_dir: Path, logger: bool) -> list[str]:
    return [f"--trainer.default_root_dir={stage_dir}"] + ([] if logger else ["--trainer.logger=false"])


def model_cli(stage: StageSpec, ctx: RunContext, logger: bool):
    """Model, data and trainer of ``stage`` (see :func:`recipe_args`)."""
    return build_cli(recipe_args(stage, ctx), ctx.stage_dir(stage.name), logger=logger)


def preflight(stage: StageSpec, ctx: RunContext) -> None:
    """Check that the stage's recipe arguments parse (``--print_config``, nothing instantiated).

    Raises:
        PipelineError: one line naming the stage and the parser's complaint.
    """
    if stage.type == "translate" and stage.config is None and "dataset" in stage.options:
        return
    from domadapt.lightning_cli import resolve_args  # the same parse as --print_config

    try:
        resolve_args([*recipe_args(stage, ctx, pending=True), *_dir_args(ctx.stage_dir(stage.name), True)])
    except ValueError as e:
        raise PipelineError(f"stage {stage.name!r} ({stage.type}): its recipe arguments do not parse: {e}") from None


def load_weights(module: torch.nn.Module, checkpoint: Path, network_only: bool = False) -> None:
    """Load a stage's checkpoint into ``module``.

    Args:
        module: the LightningModule to fill.
        checkpoint: a Lightning checkpoint (or a bare state dict).
        network_only: when the checkpoint comes from another method (its keys do not match), load only its
            ``net.`` weights, the model every method trains, and leave this method's own parts (a
            discriminator) at their initial values: how ``init_from`` starts adversarial adaptation from the
            source-only model. A checkpoint of the same method is loaded whole.

    Raises:
        PipelineError: ``network_only`` and the checkpoint's network does not match ``module``'s.
    """
    state = read_checkpoint(checkpoint, trusted=True)
    state = state["state_dict"] if "state_dict" in state else state
    try:
        module.load_state_dict(state)
        return
    except RuntimeError:
        if not network_only:
            raise
    if not isinstance(getattr(module, "net", None), torch.nn.Module):
        raise PipelineError(f"{checkpoint}: does not match this stage, and the stage has no network to start from it")
    try:
        module.net.load_state_dict(read_state_dict(checkpoint))  # a method checkpoint's `net.` weights
    except RuntimeError as e:
        raise PipelineError(f"{checkpoint}: its network does not match this stage's "
                            f"({' '.join(str(e).split())[:300]})") from None


def clean_metrics(results: list[dict]) -> dict[str, float | None]:
    """Lightning's ``[{key: value}]`` -> ``{key: float}`` with NaN (classes never seen) -> ``None``."""
    out = {}
    for r in results:
        for k, v in r.items():
            v = float(v)
            out[k] = None if math.isnan(v) else v
    return out


class _StartStep(pl.Callback):
    """Records the global step training starts from (> 0 after resuming a checkpoint)."""

    start: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = trainer.global_step


def _save_final(trainer: pl.Trainer, path: Path) -> None:
    with atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp)


def stage_options(stage: StageSpec) -> Any:
    """The typed options of ``stage`` (:mod:`domadapt.pipeline.options`), parsed when it runs: a smoke run may
    have changed them since the recipe was checked."""
    return parse_options(stage.type, stage.options, f"stage {stage.name!r}")


# ---------------------------------------------------------------------------------------- runners
def run_fit(stage: StageSpec, ctx: RunContext) -> dict[str, Any]:
    d = ctx.stage_dir(stage.name)
    args = lightning_args(stage, ctx)
    cli = build_cli(args, d)
    model, dm, trainer = cli.model, cli.datamodule, cli.trainer
    resume = resume_checkpoint(d / "checkpoints")  # last.ckpt, or previous.ckpt when last is damaged
    record: dict[str, Any] = {"args": args, "resumed_from": str(resume.relative_to(d)) if resume else None}
    if stage.inputs.get("pseudo_labels"):  # passed to the DataModule by lightning_args
        record["pseudo_labels"] = str(ctx.artifact(stage.inputs["pseudo_labels"]))
    if stage.inputs.get("init_from") and resume is None:  # a resumed run restores its own weights
        load_weights(model, ctx.artifact(stage.inputs["init_from"]), network_only=True)
        record["init_from"] = str(ctx.artifact(stage.inputs["init_from"]))
    counter = _StartStep()
    trainer.callbacks.append(counter)
    trainer.fit(model, datamodule=dm, ckpt_path=str(resume) if resume else None, weights_only=True if resume else None)
    _save_final(trainer, d / FINAL)
    metrics = {f"fit/{k}": (None if math.isnan(float(v)) else float(v))
               for k, v in trainer.callback_metrics.items() if k.startswith("val/") and torch.as_tensor(v).numel() == 1}
    if dm.test_names and is_overridden("test_step", model):  # e.g. a translation stage has no test metrics
        metrics.update(clean_metrics(trainer.test(model, datamodule=dm, verbose=False)))
    record.update({"outputs": {"main": FINAL, "model_sha256": fingerprint.file_sha256(d / FINAL)}, "metrics": metrics,
                   "start_step": counter.start, "global_step": trainer.global_step})
    return record


def _run_eval(stage: StageSpec, ctx: RunContext, what: str) -> dict[str, Any]:
    cli = model_cli(stage, ctx, logger=True)
    ckpt = ctx.artifact(stage.model_stage())
    fn = cli.trainer.test if what == "test" else cli.trainer.validate
    load_weights(cli.model, ckpt)
    results = fn(cli.model, datamodule=cli.datamodule, verbose=False)
    return {"outputs": {"checkpoint": str(ckpt)}, "metrics": clean_metrics(results)}


def run_test(stage: StageSpec, ctx: RunContext) -> dict[str, Any]:
    return _run_eval(stage, ctx, "test")


def run_evaluate(stage: StageSpec, ctx: RunContext) -> dict[str, Any]:
    return _run_eval(stage, ctx, "validate")


def run_pseudo_label(stage: StageSpec, ctx: RunContext) -> dict[str, Any]:
    from domadapt.pseudo.generate import generate_pseudo_labels
    from domadapt.pseudo.thresholds import build_strategy

    opts = stage_options(stage)
    cli = model_cli(stage, ctx, logger=False)
    ckpt = ctx.artifact(stage.model_stage())
    earlier = [s.name for s in ctx.spec.stages if s.type == "pseudo_label"].index(stage.name)
    manifest = generate_pseudo_labels(
        cli.model, cli.datamodule, ctx.stage_dir(stage.name) / LABELS, build_strategy(opts.strategy),
        dataclasses.replace(opts, round=earlier if opts.round is None else opts.round), checkpoint=ckpt,
        device="cuda" if torch.cuda.is_available() else "cpu", progress=os.environ.get("DOMADAPT_PROGRESS", "1") != "0",
    )
    precision = manifest.get("precision") or {}
    return {"outputs": {"main": LABELS, "model_sha256": manifest["model"]["sha256"]},
            "metrics": {"pseudo/kept_ratio": manifest["kept_ratio"]["overall"],
                        "pseudo/precision": precision.get("overall")},
            "thresholds": manifest["thresholds"], "strategy": manifest["strategy"]}


def run_translate(stage: StageSpec, ctx: RunContext) -> dict[str, Any]:
    from domadapt.pipeline.translate import translate_dataset  # imported when a translate stage runs

    opts = stage_options(stage)
    if opts.dataset is not None:
        dataset = instantiate(opts.dataset, f"stage {stage.name!r}.dataset", PipelineError)
    else:  # a source of the recipe (the generator stage's by default), with its labels: what BDL translates
        dm = model_cli(stage, ctx, logger=False).datamodule
        dataset = dm.sources[opts.source_index].labelled()
    kwargs = {k: v for k, v in vars(opts).items() if k not in ("dataset", "source_index")}
    d = ctx.stage_dir(stage.name)
    manifest = translate_dataset(ctx.artifact(stage.inputs["generator"]), dataset, d / TRANSLATED,
                                 device="cuda" if torch.cuda.is_available() else "cpu",
                                 show_progress=os.environ.get("DOMADAPT_PROGRESS", "1") != "0", **kwargs)
    return {"outputs": {"main": TRANSLATED, "manifest": str(Path(manifest).relative_to(d))}, "metrics": {},
            "dataset": dataset.describe()}


STAGE_RUNNERS: dict[str, Callable[[StageSpec, RunContext], dict[str, Any]]] = {
    "fit": run_fit, "test": run_test, "evaluate": run_evaluate, "pseudo_label": run_pseudo_label,
    "translate": run_translate,
}
