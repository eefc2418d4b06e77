"""``domadapt fit --config RECIPE --seeds 0,1,2``: the same recipe once per seed, then a summary.

Each seed trains in ``<default_root_dir>/seed_<s>/`` (its own logs and checkpoints), is tested on the
target test split with the final weights, and ``<default_root_dir>/seeds_summary.json`` gets every
test metric per seed with its mean and (sample) standard deviation. Finished seeds (a
``metrics.json`` with ``"finished": true``) are skipped on a rerun, so an interrupted sweep resumes.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import yaml

from domadapt.io import write_json


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``ValueError`` naming what was expected otherwise."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("expected at least one seed, e.g. --seeds 0,1,2")
    return seeds


def split_seeds(argv: list[str]) -> tuple[list[int] | None, list[str]]:
    """Remove ``--seeds A,B,C`` (or ``--seeds=A,B,C``) from ``argv``; return the seeds and the rest."""
    rest, seeds, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == "--seeds" or a.startswith("--seeds="):
            value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in a else 2
            try:
                seeds = parse_seeds(value)
            except ValueError as e:
                raise SystemExit(f"domadapt: --seeds: {e}") from None
            continue
        rest.append(a)
        i += 1
    return seeds, rest


def root_dir(argv: list[str]) -> Path:
    """``trainer.default_root_dir`` from the command line or the recipe(s) (last one wins)."""
    root = "runs"
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            cfg = yaml.safe_load(Path(argv[i + 1]).read_text()) or {}
            root = (cfg.get("trainer") or {}).get("default_root_dir") or root
        elif a.startswith("--trainer.default_root_dir"):
            root = a.split("=", 1)[1] if "=" in a else argv[i + 1]
    return Path(root)


def mean_std(values: list[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation over the defined values (``None`` / NaN, e.g. the IoU of a class
    absent from the test set, are left out); NaN when no value is defined."""
    defined = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not defined:
        return math.nan, math.nan
    return statistics.fmean(defined), (statistics.stdev(defined) if len(defined) > 1 else 0.0)


def run_seeds(argv: list[str], seeds: list[int]) -> dict:
    """Run ``fit`` + ``test`` for every seed and write ``seeds_summary.json``; returns the summary."""
    from domadapt.lightning_cli import run_lightning

    root = root_dir(argv)
    per_seed: dict[int, dict[str, float]] = {}
    for s in seeds:
        out = root / f"seed_{s}"
        done = out / "final_metrics.json"
        if done.exists():
            per_seed[s] = json.loads(done.read_text())
            print(f"seed {s}: already finished, reusing {done}")
            continue
        resume = [] if any(a.startswith("--ckpt_path") for a in argv) else ["--ckpt_path=last"]  # a killed seed resumes
        cli = run_lightning([*argv, f"--seed_everything={s}", f"--trainer.default_root_dir={out}", "--run_name=run",
                             *resume])
        results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        per_seed[s] = {k: float(v) for r in results for k, v in r.items()}
        write_json(done, per_seed[s])
    keys = sorted(set.intersection(*(set(m) for m in per_seed.values())))
    summary = {"seeds": seeds, "per_seed": {str(s): m for s, m in per_seed.items()},
               "mean": {k: mean_std([per_seed[s][k] for s in seeds])[0] for k in keys},
               "std": {k: mean_std([per_seed[s][k] for s in seeds])[1] for k in keys}}
    write_json(root / "seeds_summary.json", summary)
    print(f"\nover seeds {seeds}:")
    for k in keys:
        if "/iou/" not in k:
            print(f"  {k:<28} {100 * summary['mean'][k]:6.2f} ± {100 * summary['std'][k]:.2f}")
    print(f"summary: {root / 'seeds_summary.json'}")
    return summary
