"""The quickstart (``make demo`` / ``domadapt demo``): source-only vs adaptation on embedded data.

Trains each recipe of :data:`QUICKSTART` with ``fit``, evaluates the final weights on the target test
split with ``test`` (which writes ``metrics.json`` and plots into the run directory) and prints a
table of target accuracy with the improvement over source-only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

QUICKSTART = {
    "source-only": "digits/source_only.yaml",
    "DANN": "digits/dann.yaml",
}


def recipe_path(name: str) -> Path:
    """Path of a shipped recipe (``recipes/`` of the checkout)."""
    root = Path(__file__).resolve().parent.parent / "recipes"
    return root / name


def run_recipe(recipe: Path, out_dir: Path, max_steps: int | None, extra: list[str] = ()) -> dict:
    """``fit`` then ``test`` one recipe; returns the logged test metrics."""
    from domadapt.lightning_cli import run_lightning

    args = ["fit", "--config", str(recipe), f"--trainer.default_root_dir={out_dir}", "--run_name=run",
            "--trainer.enable_model_summary=false", *extra]
    if max_steps is not None:
        args.append(f"--trainer.max_steps={max_steps}")
    cli = run_lightning(args)
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return {k: float(v) for r in results for k, v in r.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="domadapt demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/quickstart", help="where the run directories go (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="override every recipe's trainer.max_steps")
    p.add_argument("--methods", default=",".join(QUICKSTART), help="comma-separated subset of %(default)s")
    args = p.parse_args(argv)
    from domadapt.evaluation.reports import format_table

    out = Path(args.out)
    rows, base = [], None
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if name not in QUICKSTART:
            p.error(f"--methods: unknown method {name!r}; expected some of {', '.join(QUICKSTART)}")
        t0 = time.time()
        metrics = run_recipe(recipe_path(QUICKSTART[name]), out / name.lower(), args.max_steps)
        acc = metrics["test/target/acc"]
        base = acc if base is None else base
        rows.append({"method": name, "target acc": acc, "mean-class acc": metrics.get("test/target/mean_class_acc"),
                     "vs source-only": acc - base, "minutes": (time.time() - t0) / 60})
    table = format_table(rows, ["method", "target acc", "mean-class acc", "vs source-only", "minutes"],
                         percent=["target acc", "mean-class acc", "vs source-only"])
    print("\nQuickstart: digits (real sklearn handwriting) -> digits-photo (MNIST-M-style), target test split\n")
    print(table)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"\nrun directories (metrics.json, plots, checkpoints): {out}/")
    return 0
