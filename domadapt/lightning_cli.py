"""LightningCLI with domadapt's defaults (:class:`DomadaptCLI`, :func:`run_lightning`).

Below the commands that run Lightning (``domadapt fit|test|…`` in :mod:`domadapt.cli`, pipeline fit stages, the demo,
seed sweeps, ``--print_config`` resolution of recipes): each of them imports this module, and it imports none of them.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from domadapt import __version__
from domadapt.checkpointing import AtomicCheckpointIO, LastCheckpoint, RandomState, check_checkpoint, resume_checkpoint
from domadapt.errors import RecipeError, one_line

EXTRA_COMMANDS = {
    "data": "inspect datasets on disk or write a small official-format one (`domadapt data {check,synth} NAME ROOT`)",
    "demo": "quickstart: source-only vs adapted on embedded data",
    "export": "checkpoint -> TorchScript / ONNX (`domadapt export --ckpt PATH --format onnx`)",
    "smoke": "run recipes end to end at a small scale (`domadapt smoke RECIPE... [--data-root D] [--scale S]`)",
    "pipeline": "multi-stage runs, resumable (`domadapt pipeline run RECIPE [--run-dir D] [--from-scratch]`)",
    "--seeds": "`domadapt fit --config R --seeds 0,1,2`: one run per seed + mean ± std summary",
}


class DomadaptCLI(LightningCLI):
    """LightningCLI with domadapt defaults: CSV + TensorBoard loggers under ``default_root_dir``,
    ``last.ckpt`` saved every ``--checkpoint_every_n_steps`` and at the end (atomically, the previous
    one kept), the random state in every checkpoint, ``--ckpt_path last`` falling back to the previous
    checkpoint when the last one is damaged, learning-rate logging."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="sub-directory of trainer.default_root_dir for this run's logs (default: version_N)")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=500,
                            help="write <default_root_dir>/checkpoints/last.ckpt every N optimiser steps (and at "
                                 "the end of training); a killed run resumed with --ckpt_path last loses at most N")

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(cfg["trainer"]["default_root_dir"] or "runs")
        if kwargs.get("logger") in (None, True) and cfg["trainer"].get("logger") in (None, True):
            version = cfg.get("run_name") or _next_version(root / "logs")
            kwargs["logger"] = [CSVLogger(root, name="logs", version=version),
                                TensorBoardLogger(root, name="logs", version=version, default_hp_metric=False)]
        # `kwargs["callbacks"]` replaces the configured list in LightningCLI: keep `--trainer.callbacks+=...` first
        # (the first ModelCheckpoint is the one `ckpt_path="best"` uses).
        configured = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        callbacks = [*(configured if isinstance(configured, list) else [configured]), *(kwargs.get("callbacks") or [])]
        if not any(isinstance(c, ModelCheckpoint) and c.save_last for c in callbacks):
            every = cfg.get("checkpoint_every_n_steps")
            callbacks.append(LastCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=every or None))
        if not any(isinstance(c, RandomState) for c in callbacks):
            callbacks.append(RandomState())
        if not kwargs.get("plugins") and not cfg["trainer"].get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        logging = kwargs.get("logger") is not False and cfg["trainer"].get("logger") is not False
        if logging and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        kwargs["callbacks"] = callbacks
        strategy = unused_parameter_strategy(kwargs.get("strategy", cfg["trainer"].get("strategy")), self.model)
        if strategy is not None:
            kwargs["strategy"] = strategy
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        """Dataset roots are checked before any model is built: a missing one is a one-line error."""
        from domadapt.data.roots import check_dataset_roots

        cfg = self.config[self.subcommand] if self.subcommand else self.config
        check_dataset_roots(cfg.as_dict())

    def instantiate_classes(self) -> None:
        """Build the recipe's components; a failure (weights that cannot be downloaded, a missing file, a bad value)
        becomes a :class:`~domadapt.errors.RecipeError` carrying the one line that names the cause."""
        try:
            super().instantiate_classes()
        except Exception as e:
            raise RecipeError(one_line(e)) from e

    def _parse_ckpt_path(self) -> None:
        """A checkpoint file named by ``--ckpt_path`` is checked before Lightning reads its hyper-parameters."""
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if path and Path(path).suffix == ".ckpt" and Path(path).is_file():
            check_checkpoint(path)
        super()._parse_ckpt_path()

    def before_fit(self) -> None:
        """``--ckpt_path last``: the intact last checkpoint of this run, else the previous one."""
        cfg = self.config_init[self.subcommand]
        if cfg.get("ckpt_path") == "last":
            root = Path(self.trainer.default_root_dir)
            found = resume_checkpoint(root / "checkpoints")
            cfg["ckpt_path"] = str(found) if found else None
            if found is not None and "weights_only" in cfg and cfg["weights_only"] is None:
                cfg["weights_only"] = True  # domadapt's checkpoints hold tensors and plain types only
            if found is None:
                print(f"domadapt: no checkpoint in {root / 'checkpoints'} yet; training from the start", file=sys.stderr)


def unused_parameter_strategy(strategy: Any, model: Any) -> str | None:
    """``"ddp"`` / ``"ddp_spawn"`` with unused-parameter detection when ``model`` steps its optimisers itself, else
    ``None`` (leave the strategy as configured).

    A method with manual optimisation (GAN-style ``OutputSpaceAdversarial`` / ``AdvEnt``, ``MCD``, ``Translation``)
    backpropagates several losses per batch, each reaching only part of the parameters; plain DDP then stops at the
    next step ("parameters that were not used in producing the loss"). Lightning's ``*_find_unused_parameters_true``
    strategies handle it; an explicitly configured ``DDPStrategy`` object is left as it is.
    """
    if not isinstance(strategy, str) or strategy not in ("ddp", "ddp_spawn"):
        return None
    if getattr(model, "automatic_optimization", True):
        return None
    print(f"domadapt: {type(model).__name__} steps its optimisers itself; DDP runs with unused-parameter detection "
          f"(strategy {strategy}_find_unused_parameters_true)", file=sys.stderr)
    return f"{strategy}_find_unused_parameters_true"


def _next_version(path: Path) -> str:
    existing = [int(p.name.split("_")[1]) for p in path.glob("version_*") if p.name.split("_")[1].isdigit()]
    return f"version_{max(existing, default=-1) + 1}"


def run_lightning(args: list[str] | None = None, run: bool = True) -> DomadaptCLI:
    """Run LightningCLI with domadapt's base classes (models/datamodules chosen by ``class_path``)."""
    from domadapt.data.datamodule import DomainAdaptationDataModule

    return DomadaptCLI(
        pl.LightningModule,  # any method: DomainAdaptationModule subclasses, Translation, ...
        DomainAdaptationDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={"default_root_dir": "runs"},
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},  # rerunning the same command (resume) rewrites the same config.yaml
        parser_kwargs={"prog": "domadapt", "description": _description(), "version": __version__},
        args=args,
        run=run,
    )


def _description() -> str:
    extra = "\n".join(f"  {k:<10} {v}" for k, v in EXTRA_COMMANDS.items())
    return ("domadapt: domain adaptation for PyTorch. Lightning subcommands below; also:\n" + extra)


def resolve_args(args: list[str]) -> dict[str, Any]:
    """The configuration that ``domadapt fit <args> --print_config`` prints, as a mapping.

    Raises:
        ValueError: the arguments do not parse (the parser's message, on one line).
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_lightning([*args, "--print_config"], run=False)
    except SystemExit as e:
        if e.code not in (0, None):
            text = err.getvalue()
            text = text[text.find("error:"):] if "error:" in text else text
            raise ValueError(" ".join(text.split())[:400]) from None
    return yaml.safe_load(out.getvalue())


__all__ = ["EXTRA_COMMANDS", "DomadaptCLI", "resolve_args", "run_lightning"]
