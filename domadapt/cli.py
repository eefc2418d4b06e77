"""The ``domadapt`` command.

* ``domadapt fit|validate|test|predict --config recipes/<recipe>.yaml`` — LightningCLI over any
  :class:`~domadapt.methods.DomainAdaptationModule` (``model.class_path``) and any DataModule
  (``data.class_path``), components injected by ``class_path`` in YAML recipes;
* ``domadapt data check NAME ROOT`` — inspect a dataset on disk;
* ``domadapt pipeline run RECIPE`` — multi-stage runs (:mod:`domadapt.pipeline`);
* ``domadapt demo`` — the quickstart on embedded data (what ``make demo`` runs);
* ``domadapt export --ckpt PATH --format {torchscript,onnx}`` — a checkpoint's evaluation path as a
  deployable file (:mod:`domadapt.export`);
* ``domadapt smoke RECIPE…`` — run recipes end to end at a small scale (:mod:`domadapt.recipes.smoke`).

``python -m domadapt …`` is the same command.
"""

from __future__ import annotations

import os
import sys

from domadapt.checkpointing import CheckpointError
from domadapt.errors import TRACEBACK_VARIABLE, RecipeError, show_tracebacks
from domadapt.io import DataError
from domadapt.lightning_cli import run_lightning
from domadapt.quiet import quiet_third_party

def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``domadapt`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--verbose"]:  # `domadapt --verbose CMD ...`: full tracebacks (`test --verbose` is Lightning's)
        argv = argv[1:]
        os.environ[TRACEBACK_VARIABLE] = "1"
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
    if argv and argv[0] == "smoke":
        from domadapt.recipes.smoke import main as smoke_main

        return smoke_main(argv[1:])
    from domadapt.multiseed import run_seeds, split_seeds

    seeds, argv = split_seeds(argv)
    if seeds is not None:
        if not argv or argv[0] != "fit":
            print("domadapt: --seeds goes with `fit` (each seed is trained, then tested)", file=sys.stderr)
            return 2
        run_seeds(argv, seeds)
        return 0
    try:
        run_lightning(argv)
    except CheckpointError as e:  # a truncated / missing checkpoint: one line, not a traceback
        print(f"domadapt: error: {e}", file=sys.stderr)
        return 1
    except (RecipeError, DataError) as e:  # the recipe's components could not be built
        if show_tracebacks():
            raise
        print(f"domadapt: error: {e} [traceback: domadapt --verbose ... or {TRACEBACK_VARIABLE}=1]", file=sys.stderr)
        return 1
    return 0


def _data_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: domadapt data check {cityscapes,gta5,synthia,domainnet} ROOT [--split S] [--domain D]\n"
              "       domadapt data synth {gta5,cityscapes,synthia,domainnet} ROOT [--images N] [--scale S]"
              " [--seed K]\n\n"
              "check: inspect a dataset on disk: images/labels found, unpaired files, size mismatches and the\n"
              "       label-value histogram mapped to class names. Exits non-zero when training on it would fail.\n"
              "synth: write a small synthetic dataset in the official on-disk format (try a recipe before\n"
              "       downloading). `domadapt data COMMAND --help` for the options.")
        return 0 if argv else 2
    if argv[0] == "check":
        from domadapt.data.check import main as check_main

        return check_main(argv[1:])
    if argv[0] == "synth":
        from domadapt.data.synth import main as synth_main

        return synth_main(argv[1:])
    print(f"domadapt data: unknown command {argv[0]!r}; expected `check` or `synth`", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
