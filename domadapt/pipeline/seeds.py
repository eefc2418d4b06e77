"""``domadapt pipeline run RECIPE --seeds 0,1,2``: the whole pipeline once per seed, then mean ± std per stage.

Seed ``s`` runs in ``<run_dir>/seed_<s>/`` with ``--seed_everything=s`` for every Lightning stage, and
resumes like any pipeline (a finished seed is all "finished earlier, skipped"), so seeds can also be
run by separate processes (``--seeds 0`` and ``--seeds 1`` side by side) and summarised by a final
``--seeds 0,1`` that only reads them. ``<run_dir>/seeds_summary.json`` holds, per stage and per
metric of the per-seed tables (target metric, ``table_metrics``, pseudo-label kept ratio / precision),
the values per seed, their mean and sample standard deviation; ``seeds_table.txt`` shows them as
``mean ± std`` and ``seeds_summary.png`` plots them with error bars.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from domadapt.io import atomic_path, write_json
from domadapt.multiseed import mean_std
from domadapt.pipeline.config import load_pipeline
from domadapt.pipeline.plots import plot_pipeline_summary
from domadapt.pipeline.runner import run_pipeline

SEEDS_SUMMARY = "seeds_summary.json"
SEEDS_TABLE = "seeds_table.txt"
SEEDS_PLOT = "seeds_summary.png"
PSEUDO_METRICS = ("pseudo/kept_ratio", "pseudo/precision")


def run_pipeline_seeds(recipe: str | Path | dict, seeds: list[int], run_dir: str | Path | None = None,
                       from_scratch: bool = False, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) ``recipe`` once per seed and summarise.

    Args:
        recipe: a pipeline recipe path or mapping.
        seeds: the seeds, in order; each replaces the recipe's ``seed``.
        run_dir: overrides the recipe's ``run_dir`` (the parent of the ``seed_<s>`` folders).
        from_scratch, overrides: as :func:`~domadapt.pipeline.runner.run_pipeline`, for every seed.

    Returns:
        The multi-seed summary (also written to ``<run_dir>/seeds_summary.json``).
    """
    spec = load_pipeline(recipe, run_dir)
    root = Path(run_dir) if run_dir is not None else spec.run_dir
    per_seed = {}
    for s in seeds:
        print(f"=== seed {s} ===", flush=True)
        per_seed[s] = run_pipeline(dataclasses.replace(spec, seed=s), root / f"seed_{s}", from_scratch, overrides)
    summary = summarise(per_seed)
    write_json(root / SEEDS_SUMMARY, summary)
    table = seeds_table(summary)
    with atomic_path(root / SEEDS_TABLE) as tmp:
        Path(tmp).write_text(table + "\n")
    plot = plot_pipeline_summary(summary, root / SEEDS_PLOT)
    print(f"\nover seeds {seeds}:\n{table}\nsummary: {root / SEEDS_SUMMARY}" + (f"\nplot: {plot}" if plot else ""))
    return summary


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per stage and metric: ``{"values": [per seed], "mean": m, "std": s}`` (undefined values left out
    of mean and std, as :func:`~domadapt.multiseed.mean_std`)."""
    first = next(iter(per_seed.values()))
    metrics = [m for m in (first.get("target_metric"), *first.get("table_metrics", []), *PSEUDO_METRICS) if m]
    stages = []
    for i, st in enumerate(first["stages"]):
        row: dict[str, Any] = {"name": st["name"], "type": st["type"], "metrics": {}}
        for m in metrics:
            values = [summary["stages"][i]["metrics"].get(m) for summary in per_seed.values()]
            if all(v is None for v in values):
                continue
            mean, std = mean_std(values)
            row["metrics"][m] = {"values": values, "mean": mean, "std": std}
        stages.append(row)
    return {"seeds": list(per_seed), "target_metric": first.get("target_metric"), "metrics": metrics,
            "run_dirs": {str(s): summary["run_dir"] for s, summary in per_seed.items()}, "stages": stages}


def seeds_table(summary: dict[str, Any]) -> str:
    """One line per stage: ``mean ± std`` (in %) of each metric over the seeds, then the per-seed values."""
    from domadapt.evaluation.reports import format_table

    def cell(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return ""
        per = ", ".join("n/a" if v is None else f"{100 * v:.1f}" for v in entry["values"])
        return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f} ({per})"

    rows = [{"stage": st["name"], "type": st["type"], **{m: cell(st["metrics"].get(m)) for m in summary["metrics"]}}
            for st in summary["stages"]]
    return format_table(rows, ["stage", "type", *summary["metrics"]], percent=())
