"""``domadapt smoke RECIPE… [--data-root DIR] [--steps 2] [--scale S]``: run recipes end to end, small.

A fit recipe or a whole pipeline runs with everything as written — methods, networks, losses,
transforms, stages, inputs, overrides — except what :mod:`domadapt.recipes.shrink` changes (a few
images per dataset, image sizes times ``--scale``, capped batches, random initialisation instead of
downloaded weights) and a few optimiser steps per stage (``--steps`` batches, then validation and the
test of every fit stage). Real-data recipes read ``$DOMADAPT_DATA``, pointed at ``--data-root`` or at a
tree synthesised in the official formats (:func:`domadapt.data.synth.synthesize`).

One line per recipe: ``ok`` or ``FAIL``, stages run, seconds, and on failure the stage and the
one-line error. The full output of each recipe goes to ``<work dir>/<recipe>/smoke.log``; without ``--work-dir``
each recipe's folder is deleted once its line is printed (a failure's log tail goes to stderr first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import yaml

from domadapt.recipes.listing import DATA_VARIABLE, is_pipeline, recipe_files
from domadapt.recipes.shrink import Shrink, shrink

DATASET_DIRS = ("gta5", "cityscapes", "synthia", "domainnet")  # $DOMADAPT_DATA/<name>, as the recipes read it
LOG_TAIL = 25  # lines of a failed recipe's log shown when no --work-dir keeps it


@dataclass
class SmokeResult:
    """What one smoke run did."""

    recipe: str
    stages_run: int
    stages_total: int
    seconds: float
    error: str | None = None
    failed_stage: str | None = None
    replaced_weights: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        head = f"{'ok' if self.ok else 'FAIL':<4} {self.recipe}  {self.stages_run}/{self.stages_total} stages  " \
               f"{self.seconds:.1f} s"
        if self.replaced_weights:
            head += f"  (weights {', '.join(map(repr, self.replaced_weights))} -> random init)"
        return head if self.ok else f"{head}  stage {self.failed_stage}: {self.error}"


def smoke_recipe(recipe: str | Path, work_dir: str | Path, steps: int = 2, scale: float = 1.0,
                 images: int = 4) -> SmokeResult:
    """Run one recipe small (see the module docstring) under ``work_dir``; never raises for the recipe's
    own failures, which the result reports.

    Args:
        recipe: a fit recipe or a pipeline recipe.
        work_dir: this recipe's folder (shrunk recipes, run directory, ``smoke.log``); emptied first.
        steps: training batches per fit stage.
        scale: factor on every image size of the recipe.
        images: samples per dataset (and the largest batch).
    """
    from domadapt.pipeline.config import PipelineSpec, StageSpec, load_pipeline
    from domadapt.pipeline.runner import DONE, run_pipeline

    recipe, work = Path(recipe), Path(work_dir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "recipes").mkdir(parents=True)
    how, t0 = Shrink(images=images, scale=scale), time.time()
    spec = None
    try:
        if is_pipeline(recipe):
            spec = load_pipeline(recipe)
        else:
            seed = (yaml.safe_load(recipe.read_text()) or {}).get("seed_everything")
            spec = PipelineSpec(work / "run", seed if isinstance(seed, int) else 0, [StageSpec("fit", "fit", recipe)])
        written: dict[Path, Path] = {}
        for stage in spec.stages:
            if isinstance(stage.config, Path):
                if stage.config not in written:
                    written[stage.config] = _write(shrink(yaml.safe_load(stage.config.read_text()), how),
                                                   work / "recipes" / f"{len(written)}_{stage.config.name}")
                stage.config = written[stage.config]
            elif isinstance(stage.config, dict):
                stage.config = shrink(stage.config, how)
            stage.options = shrink(stage.options, how)
        with _captured(work / "smoke.log"):
            run_pipeline(spec, run_dir=work / "run", overrides=trainer_overrides(steps))
        error = stage_name = None
    except Exception as e:  # the recipe's failure is the result, reported on one line
        error = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        stage_name = next((s.name for s in spec.stages if not (work / "run" / s.name / DONE).is_file()), "?") \
            if spec is not None else "(recipe)"
    total = len(spec.stages) if spec is not None else 0
    run = sum((work / "run" / s.name / DONE).is_file() for s in spec.stages) if spec is not None else 0
    return SmokeResult(_name(recipe), run, total, time.time() - t0, error, stage_name,
                       tuple(sorted(how.replaced_weights)))


class TrainBatches(pl.Callback):
    """Exactly ``n`` training batches per epoch.

    ``--trainer.limit_train_batches=1`` cannot say it: jsonargparse parses the 1 (on the command line or in YAML)
    into ``1.0``, which Lightning reads as 100 % of the batches. Set in ``setup``, before any loader is built.
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        trainer.limit_train_batches = self.n


def trainer_overrides(steps: int) -> list[str]:
    """Arguments applied last to every Lightning stage: ``steps`` training batches, a short validation and
    test, no progress bars."""
    return [f"--trainer.callbacks+={{class_path: {TrainBatches.__module__}.TrainBatches, init_args: {{n: {steps}}}}}",
            "--trainer.max_epochs=1", "--trainer.max_steps=-1",
            "--trainer.val_check_interval=1.0", "--trainer.check_val_every_n_epoch=1",
            "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--trainer.num_sanity_val_steps=0",
            "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]


def _write(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _name(recipe: Path) -> str:
    try:
        return recipe.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(recipe)


@contextlib.contextmanager
def _captured(log: Path):
    """Everything written to stdout / stderr (Python, Lightning's loggers, C code) goes to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f, contextlib.redirect_stdout(sys.__stdout__), contextlib.redirect_stderr(sys.__stderr__):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def data_environment(data_root: Path):
    """``$DOMADAPT_DATA`` pointed at ``data_root`` and no progress bars, for the duration."""
    saved = {k: os.environ.get(k) for k in (DATA_VARIABLE, "DOMADAPT_PROGRESS")}
    os.environ[DATA_VARIABLE], os.environ["DOMADAPT_PROGRESS"] = str(data_root), "0"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def needed_datasets(recipes: list[Path]) -> list[str]:
    """The ``$DOMADAPT_DATA/<name>`` trees the recipes (and their stages' recipes) read."""
    text = "\n".join(p.read_text() for r in recipes for p in recipe_files(r))
    found = set(re.findall(r"\$\{?" + DATA_VARIABLE + r"\}?/(\w+)", text))
    return [n for n in DATASET_DIRS if n in found]


def synthesize_tree(root: Path, names: list[str], images: int, scale: float) -> Path:
    """A ``$DOMADAPT_DATA`` tree with the official-format datasets ``names`` (made once, reused)."""
    from domadapt.data.synth import synthesize

    for name in names:
        if not (root / name / ".complete").is_file():
            synthesize(name, root / name, images=images, scale=scale)
            (root / name / ".complete").write_text("")
    return root


def main(argv: list[str] | None = None) -> int:
    """``domadapt smoke``; exit 0 when every recipe ran, 1 when one failed, 2 on bad arguments."""
    p = argparse.ArgumentParser(
        prog="domadapt smoke", description="Run fit or pipeline recipes end to end at a small scale: a few optimiser "
        "steps per stage, a few images per dataset, image sizes times --scale, random init instead of downloaded "
        "weights; one line per recipe. Real-data recipes read --data-root or a synthesised official-format tree.")
    p.add_argument("recipes", nargs="+", type=Path, metavar="RECIPE")
    p.add_argument("--data-root", type=Path, default=None,
                   help=f"folder used as ${DATA_VARIABLE} (holding gta5/, cityscapes/, synthia/, domainnet/); "
                        "default: a tree synthesised under the work dir")
    p.add_argument("--steps", type=int, default=2, help="training batches per fit stage (default 2)")
    p.add_argument("--scale", type=float, default=0.0625,
                   help="factor on every image size of the recipes and of a synthesised tree (default 1/16; 1 = "
                        "the recipes' resolutions)")
    p.add_argument("--images", type=int, default=4, help="images per dataset and largest batch (default 4)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep runs, shrunk recipes and logs here (default: a temporary folder, deleted)")
    args = p.parse_args(argv)
    for r in args.recipes:
        if not r.is_file():
            p.error(f"{r}: no such recipe")
    if args.steps < 1 or args.images < 1 or args.scale <= 0:
        p.error("--steps and --images must be >= 1 and --scale > 0")
    if args.data_root is not None and not args.data_root.is_dir():
        p.error(f"--data-root {args.data_root}: no such folder")
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="domadapt-smoke-")))
        data = args.data_root or synthesize_tree(work / "data", needed_datasets(args.recipes), args.images, args.scale)
        stack.enter_context(data_environment(data.resolve()))
        results = []
        for i, recipe in enumerate(args.recipes):
            folder = work / f"{i:02d}_{recipe.stem}"
            results.append(smoke_recipe(recipe, folder, args.steps, args.scale, args.images))
            print(results[-1].line(), flush=True)
            if args.work_dir is None:  # nothing is kept: show a failure's log now, free the disk for the next recipe
                if not results[-1].ok:
                    tail = (folder / "smoke.log").read_text(errors="replace").splitlines()[-LOG_TAIL:]
                    print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
                shutil.rmtree(folder, ignore_errors=True)
    failed = sum(not r.ok for r in results)
    if len(results) > 1:
        print(f"smoke: {len(results) - failed} of {len(results)} recipes ran" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
