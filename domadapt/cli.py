"""The ``domadapt`` command.

* ``domadapt fit|validate|test|predict --config recipes/<recipe>.yaml`` — LightningCLI over any
  :class:`~domadapt.methods.DomainAdaptationModule` (``model.class_path``) and any DataModule
  (``data.class_path``), components injected by ``class_path`` in YAML recipes;
* ``domadapt data check NAME ROOT`` — inspect a dataset on disk;
* ``domadapt pipeline run RECIPE`` — multi-stage runs (:mod:`domadapt.pipeline`);
* ``domadapt demo`` — the quickstart on embedded data (what ``make demo`` runs);
* ``domadapt export --ckpt PATH --format {torchscript,onnx}`` — a checkpoint's evaluation path as a
  deployable file (:mod:`domadapt.export`).

``python -m domadapt …`` is the same command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from domadapt import __version__
from domadapt.quiet import quiet_third_party

EXTRA_COMMANDS = {
    "data": "inspect datasets on disk (`domadapt data check NAME ROOT`)",
    "demo": "quickstart: source-only vs adapted on embedded data",
    "export": "checkpoint -> TorchScript / ONNX (`domadapt export --ckpt PATH --format onnx`)",
    "pipeline": "multi-stage runs, resumable (`domadapt pipeline run RECIPE [--run-dir D] [--from-scratch]`)",
    "--seeds": "`domadapt fit --config R --seeds 0,1,2`: one run per seed + mean ± std summary",
}


class DomadaptCLI(LightningCLI):
    """LightningCLI with domadapt defaults: CSV + TensorBoard loggers under ``default_root_dir``,
    ``last.ckpt`` saved for resuming (``--ckpt_path last``), learning-rate logging."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="sub-directory of trainer.default_root_dir for this run's logs (default: version_N)")

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
            callbacks.append(ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0))
        if kwargs.get("logger") is not False and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)


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
        parser_kwargs={"prog": "domadapt", "description": _description(), "version": __version__},
        args=args,
        run=run,
    )


def _description() -> str:
    extra = "\n".join(f"  {k:<10} {v}" for k, v in EXTRA_COMMANDS.items())
    return ("domadapt: domain adaptation for PyTorch. Lightning subcommands below; also:\n" + extra)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``domadapt`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_third_party()
    if argv and argv[0] == "data":
        return _data_command(argv[1:])
    if argv and argv[0] == "pipeline":
        from domadapt.pipeline.runner import main as pipeline_main

        return pipeline_main(argv[1:])
    if argv and argv[0] == "demo":
        from domadapt.demo import main as demo_main

        return demo_main(argv[1:])
    if argv and argv[0] == "export":
        from domadapt.export import main as export_main

        return export_main(argv[1:])
    from domadapt.multiseed import run_seeds, split_seeds

    seeds, argv = split_seeds(argv)
    if seeds is not None:
        if not argv or argv[0] != "fit":
            print("domadapt: --seeds goes with `fit` (each seed is trained, then tested)", file=sys.stderr)
            return 2
        run_seeds(argv, seeds)
        return 0
    run_lightning(argv)
    return 0


def _data_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: domadapt data check {cityscapes,gta5,synthia,domainnet} ROOT [--split S] [--domain D]\n\n"
              "Inspect a dataset on disk: images/labels found, unpaired files, size mismatches and the\n"
              "label-value histogram mapped to class names. Exits non-zero when the layout is wrong.")
        return 0 if argv else 2
    if argv[0] != "check":
        print(f"domadapt data: unknown command {argv[0]!r}; expected `check`", file=sys.stderr)
        return 2
    from domadapt.data.check import main as check_main

    return check_main(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
