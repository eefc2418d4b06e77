"""``summary.png`` of a pipeline: the target metric after each fit stage and the pseudo-label quality per round.

Two panels, stages in pipeline order on the x axis:

* left — the target metric (``summary["target_metric"]``) of every stage that has it;
* right — per ``pseudo_label`` stage, the kept ratio and (when the target's hidden labels exist) the
  precision of the kept labels.

Works for one run (``summary.json``: a value per stage) and for a multi-seed summary
(``seeds_summary.json``: mean with a ± one-standard-deviation error bar).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from domadapt.evaluation.reports import save_figure

PSEUDO = (("pseudo/kept_ratio", "kept ratio"), ("pseudo/precision", "precision of kept labels"))


def _value(entry: Any) -> tuple[float, float]:
    """``(value, std)`` in % from a number (std 0) or a ``{"mean", "std"}`` record; NaN when undefined."""
    if isinstance(entry, dict):
        mean, std = entry.get("mean"), entry.get("std")
    else:
        mean, std = entry, 0.0
    if mean is None or not math.isfinite(float(mean)):
        return math.nan, math.nan
    return 100 * float(mean), 100 * float(std or 0.0)


def _series(summary: dict[str, Any], metric: str, stage_type: str | None = None) -> tuple[list, list, list]:
    names, means, stds = [], [], []
    for st in summary["stages"]:
        if stage_type is not None and st["type"] != stage_type:
            continue
        mean, std = _value(st["metrics"].get(metric))
        if not math.isnan(mean):
            names.append(st["name"])
            means.append(mean)
            stds.append(std)
    return names, means, stds


def plot_pipeline_summary(summary: dict[str, Any], path: str | Path, title: str | None = None) -> Path | None:
    """Write the two-panel PNG; ``None`` (nothing written) when no stage has a plottable figure.

    Args:
        summary: a pipeline ``summary.json`` or multi-seed ``seeds_summary.json`` document.
        path: the PNG to write (atomically).
        title: figure title (default: the seeds, for a multi-seed summary).
    """
    metric = summary.get("target_metric")
    target = _series(summary, metric) if metric else ([], [], [])
    pseudo = {label: _series(summary, key, "pseudo_label") for key, label in PSEUDO}
    if not target[0] and not any(s[0] for s in pseudo.values()):
        return None
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for ax, series, ylabel in ((left, {metric or "": target}, f"{metric} (%)"), (right, pseudo, "%")):
        for label, (names, means, stds) in series.items():
            if names:
                ax.errorbar(range(len(names)), means, yerr=stds, marker="o", capsize=3, label=label)
                ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
                for x, m in enumerate(means):
                    ax.annotate(f"{m:.1f}", (x, m), textcoords="offset points", xytext=(0, 6), ha="center",
                                fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    left.set_title("target metric after each stage")
    right.set_title("pseudo labels per round")
    if any(s[0] for s in pseudo.values()):
        right.legend()
    seeds = summary.get("seeds")
    fig.suptitle(title or (f"mean ± std over seeds {', '.join(map(str, seeds))}" if seeds else "pipeline summary"))
    return save_figure(fig, path)
