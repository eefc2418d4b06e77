"""Run a pipeline recipe stage by stage, resumably (``domadapt pipeline run RECIPE``).

Each stage writes under ``run_dir/<stage>/`` and finishes by writing ``DONE.json`` atomically, last:

    {"stage", "type", "fingerprint", "finished_at", "seconds", "outputs": {...}, "metrics": {...}, ...}

On a rerun a stage whose ``DONE.json`` carries the same *fingerprint* is skipped. The fingerprint
hashes what determines the stage's result: its type, recipe (file contents or inline mapping),
seed, overrides (pipeline, stage and command line), options, and the fingerprint and finish time of
every stage it reads. So editing a recipe, or recomputing an input, reruns the stage (its folder is
cleared first); nothing else is recomputed. A ``fit`` stage without ``DONE.json`` whose
``checkpoints/last.ckpt`` exists was interrupted and resumes from that checkpoint.

At the end ``run_dir/summary.json`` lists every stage's metrics, and a table of the target metric
(plus the recipe's ``table_metrics``) after each stage is printed and written to
``run_dir/summary_table.txt`` (cf. BDL's ablation table, METHODS.md §1.6); ``run_dir/summary.png`` plots the
target metric per stage and the pseudo-label kept ratio / precision per round.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from domadapt.errors import TRACEBACK_VARIABLE, RecipeError, show_tracebacks
from domadapt.io import DataError, atomic_path, write_json
from domadapt.pipeline.config import PipelineError, PipelineSpec, StageSpec, load_pipeline
from domadapt.pipeline.plots import plot_pipeline_summary
from domadapt.pipeline.stages import STAGE_RUNNERS, RunContext, preflight

DONE = "DONE.json"
SUMMARY = "summary.json"
TABLE = "summary_table.txt"
PLOT = "summary.png"
METRIC_CANDIDATES = ("test/target/miou", "test/target/acc", "val/target/miou", "val/target/acc",
                     "fit/val/target/miou", "fit/val/target/acc")


def fingerprint(stage: StageSpec, ctx: RunContext) -> str:
    """sha256 of everything that determines ``stage``'s result (see the module docstring)."""
    if isinstance(stage.config, Path):
        config: Any = hashlib.sha256(stage.config.read_bytes()).hexdigest()
    else:
        config = stage.config
    inputs = {what: [ctx.done[ref].get("fingerprint"), ctx.done[ref].get("finished_at")]
              for what, ref in sorted(stage.references().items())}
    doc = {"type": stage.type, "config": config, "seed": ctx.spec.seed, "options": stage.options,
           "overrides": [*ctx.spec.overrides, *stage.overrides, *ctx.cli_overrides], "inputs": inputs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def read_done(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / DONE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: treat the stage as unfinished


def stage_status(stage: StageSpec, stage_dir: Path) -> str:
    if (stage_dir / DONE).is_file():
        return "done"
    if stage.type == "fit" and (stage_dir / "checkpoints" / "last.ckpt").is_file():
        return "interrupted (resumes from checkpoints/last.ckpt)"
    return "pending"


def run_pipeline(recipe: str | Path | dict | PipelineSpec, run_dir: str | Path | None = None,
                 from_scratch: bool = False, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a pipeline.

    Args:
        recipe: a pipeline recipe path, mapping or :class:`PipelineSpec`.
        run_dir: overrides the recipe's ``run_dir``.
        from_scratch: delete every stage folder of this pipeline (and the summary) first.
        overrides: extra command-line arguments for every Lightning stage, applied last.

    Returns:
        The summary (also written to ``run_dir/summary.json``).
    """
    from domadapt.quiet import quiet_third_party

    quiet_third_party()
    spec = recipe if isinstance(recipe, PipelineSpec) else load_pipeline(recipe, run_dir)
    root = Path(run_dir) if run_dir is not None else spec.run_dir
    ctx = RunContext(spec, root, cli_overrides=list(overrides or []))
    if from_scratch:
        for s in spec.stages:
            shutil.rmtree(root / s.name, ignore_errors=True)
        (root / SUMMARY).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    for stage in spec.stages:  # before anything runs: every stage still to run must parse
        if read_done(ctx.stage_dir(stage.name)) is None:
            preflight(stage, ctx)
    skipped: set[str] = set()
    for i, stage in enumerate(spec.stages, 1):
        d = ctx.stage_dir(stage.name)
        fp = fingerprint(stage, ctx)
        done = read_done(d)
        head = f"[{i}/{len(spec.stages)}] {stage.name} ({stage.type})"
        if done is not None and done.get("fingerprint") == fp:
            print(f"{head}: finished earlier, skipped")
            ctx.done[stage.name] = done
            skipped.add(stage.name)
            continue
        if done is not None:
            print(f"{head}: its recipe or an input changed since it finished; rerunning from scratch")
            shutil.rmtree(d)
        print(f"{head}: {stage_status(stage, d)} -> running", flush=True)
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        try:
            record = STAGE_RUNNERS[stage.type](stage, ctx)
        except BaseException:
            print(f"{head}: failed; fix the cause and run the same command again to resume here", file=sys.stderr)
            raise
        done = {"stage": stage.name, "type": stage.type, "fingerprint": fp,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.time() - t0, 1), **record}
        write_json(d / DONE, done)  # last: the stage is finished only now
        ctx.done[stage.name] = done
    summary = _summary(spec, ctx, skipped)
    write_json(root / SUMMARY, summary)
    table = summary_table(summary)
    with atomic_path(root / TABLE) as tmp:
        Path(tmp).write_text(table + "\n")
    print(table)
    print(f"summary: {root / SUMMARY}")
    if plot_pipeline_summary(summary, root / PLOT) is not None:
        print(f"plot: {root / PLOT}")
    return summary


def _summary(spec: PipelineSpec, ctx: RunContext, skipped: set[str]) -> dict[str, Any]:
    stages = [{"name": s.name, "type": s.type, "skipped": s.name in skipped,
               "metrics": ctx.done[s.name].get("metrics", {}), "outputs": ctx.done[s.name].get("outputs", {})}
              for s in spec.stages]
    metric = spec.target_metric or next((m for m in METRIC_CANDIDATES
                                         if any(st["metrics"].get(m) is not None for st in stages)), None)
    return {"run_dir": str(ctx.run_dir), "target_metric": metric, "table_metrics": list(spec.table_metrics),
            "stages": stages}


def summary_table(summary: dict[str, Any]) -> str:
    """Target metric (and ``table_metrics``) after each stage, plus kept ratio / precision of pseudo-label
    stages: the per-round table of BDL's ablation (METHODS.md §1.6)."""
    from domadapt.evaluation.reports import format_table

    metrics = [summary.get("target_metric") or "metric", *summary.get("table_metrics", [])]
    rows = [{"stage": st["name"], "type": st["type"], **{m: st["metrics"].get(m) for m in metrics},
             "pl_kept": st["metrics"].get("pseudo/kept_ratio"), "pl_precision": st["metrics"].get("pseudo/precision")}
            for st in summary["stages"]]
    return format_table(rows, ["stage", "type", *metrics, "pl_kept", "pl_precision"],
                        percent={*metrics, "pl_kept", "pl_precision"})


def check(recipe: str | Path, run_dir: str | Path | None = None) -> PipelineSpec:
    """Validate a pipeline (chaining, and every stage's recipe arguments parse) and print its expanded
    stage list with each stage's status."""
    spec = load_pipeline(recipe, run_dir)
    root = Path(run_dir) if run_dir is not None else spec.run_dir
    ctx = RunContext(spec, root)
    for stage in spec.stages:
        preflight(stage, ctx)
    print(f"pipeline {recipe}: {len(spec.stages)} stages, run_dir {root}, seed {spec.seed}")
    for i, s in enumerate(spec.stages, 1):
        refs = ", ".join(f"{k}={v}" for k, v in s.references().items())
        cfg = s.config if not isinstance(s.config, dict) else "<inline>"
        print(f"  {i:>2}. {s.name:<16} {s.type:<12} {stage_status(s, root / s.name):<10} "
              f"{cfg or ''}{'  <- ' + refs if refs else ''}")
    return spec


def _seed_list(text: str) -> list[int]:
    from domadapt.multiseed import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """``domadapt pipeline {run,check} RECIPE ...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="domadapt pipeline", description="Multi-stage runs (fit -> pseudo-label -> fit ...), resumable per stage.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a pipeline recipe")
    chk = sub.add_parser("check", help="validate a pipeline recipe and show its stages and their status")
    for p in (run, chk):
        p.add_argument("recipe", help="pipeline YAML (e.g. recipes/pipeline/toycity_selftraining.yaml)")
        p.add_argument("--run-dir", default=None, help="override the recipe's run_dir")
    run.add_argument("--from-scratch", action="store_true", help="delete this pipeline's stage folders first")
    run.add_argument("--override", action="append", default=[], metavar="ARG",
                     help="extra argument for every Lightning stage, applied last; repeatable; write it with '=': "
                          "--override=--trainer.max_steps=10")
    run.add_argument("--seeds", type=_seed_list, default=None, metavar="A,B,C",
                     help="run the whole pipeline once per seed in RUN_DIR/seed_<s>/ and write seeds_summary.json "
                          "(mean ± std per stage); finished seeds are reused")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            check(args.recipe, args.run_dir)
        elif args.seeds is not None:
            from domadapt.pipeline.seeds import run_pipeline_seeds

            run_pipeline_seeds(args.recipe, args.seeds, args.run_dir, args.from_scratch, args.override)
        else:
            run_pipeline(args.recipe, args.run_dir, args.from_scratch, args.override)
    except PipelineError as e:
        print(f"domadapt pipeline: {e}", file=sys.stderr)
        return 2
    except (RecipeError, DataError) as e:  # a stage's components could not be built (the stage is named above)
        if show_tracebacks():
            raise
        print(f"domadapt pipeline: error: {e} [traceback: domadapt --verbose ... or {TRACEBACK_VARIABLE}=1]",
              file=sys.stderr)
        return 1
    return 0
