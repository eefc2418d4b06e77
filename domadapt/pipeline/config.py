"""Pipeline recipes: parsing, ``repeat`` expansion and validation before anything runs.

A pipeline recipe is YAML::

    run_dir: runs/pipeline/toycity_selftraining   # every stage writes under run_dir/<stage name>/
    seed: 0                                       # --seed_everything of every Lightning stage
    overrides: [--trainer.max_steps=400]          # optional, before each stage's own overrides
    target_metric: test/target/miou               # optional, the summary column (default: auto)
    table_metrics: [test/target/miou13]           # optional, more summary columns (e.g. mIoU13 / mIoU16)
    stages:
      - name: adapt
        type: fit                                 # fit | test | evaluate | pseudo_label | translate
        config: recipes/toycity/output_adversarial.yaml   # a normal recipe path, or an inline mapping
        overrides: [--trainer.max_steps=200]
      - name: pl1
        type: pseudo_label
        inputs: {model: adapt}
        strategy: {type: class_percentile, percentile: 0.5, cap: 0.9}
      - name: ssl1
        type: fit
        config: recipes/toycity/output_adversarial.yaml
        inputs: {pseudo_labels: pl1, init_from: null}   # null: fresh (seeded) initial weights, as BDL

Any other key of a stage is an *option* of its type, a field of its dataclass in
:mod:`domadapt.pipeline.options` (:class:`~domadapt.pipeline.options.PseudoLabelOptions`,
:class:`~domadapt.pipeline.options.TranslateOptions`; a translate stage reads ``inputs:
{generator: <fit stage of a Translation recipe>}``).
An override may name an earlier stage's main artifact as ``{{stage}}`` (a fit stage's ``final.ckpt``,
a pseudo-label folder, a translated dataset folder); that is a dependency like ``inputs``.

``{repeat: N, stages: [...]}`` entries expand to ``N`` copies in which the text ``{i}`` becomes the
round number ``1..N`` and ``{prev}`` becomes ``i − 1`` (so round 1 refers to stages ending in ``0``)::

    - repeat: 2
      stages:
        - {name: "pl{i}", type: pseudo_label, inputs: {model: "st{prev}"}}
        - {name: "st{i}", type: fit, config: R, inputs: {pseudo_labels: "pl{i}"}}

An optional ``first: {name: stage}`` mapping renames references in round 1 only, so that a second chain
can start from a stage of another name (``{first: {u0: m0}}``: round 1's ``"u{prev}"`` is ``m0``).

Relative config paths are looked up from the current directory, then from the pipeline file's folder.
"""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from domadapt.pipeline.options import PipelineError, check_type, parse_options

StageType = Literal["fit", "test", "evaluate", "pseudo_label", "translate"]
STAGE_TYPES: tuple[str, ...] = typing.get_args(StageType)

#: input name -> stage types it may reference, per stage type
STAGE_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "fit": {"pseudo_labels": ("pseudo_label",), "init_from": ("fit",)},
    "test": {"model": ("fit",)},
    "evaluate": {"model": ("fit",)},
    "pseudo_label": {"model": ("fit",)},
    "translate": {"generator": ("fit",)},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


@dataclass
class StageSpec:
    """One stage of a pipeline (see the module docstring for the YAML form)."""

    name: str
    type: StageType
    config: Path | dict | None = None
    overrides: list[str] = field(default_factory=list)
    inputs: dict[str, str | None] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def references(self) -> dict[str, str]:
        """``{what: stage}`` for every earlier stage this one reads (inputs and ``{{stage}}`` placeholders)."""
        refs = {f"inputs.{k}": v for k, v in self.inputs.items() if v is not None}
        for o in self.overrides:
            for m in PLACEHOLDER.finditer(o):
                refs[f"overrides {{{{{m.group(1)}}}}}"] = m.group(1)
        return refs

    def model_stage(self) -> str | None:
        return self.inputs.get("model")


@dataclass
class PipelineSpec:
    """A validated pipeline."""

    run_dir: Path
    seed: int
    stages: list[StageSpec]
    overrides: list[str] = field(default_factory=list)
    target_metric: str | None = None
    source: Path | None = None
    table_metrics: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)


def _substitute(obj: Any, i: int) -> Any:
    if isinstance(obj, str):
        return obj.replace("{i}", str(i)).replace("{prev}", str(i - 1))
    if isinstance(obj, list):
        return [_substitute(v, i) for v in obj]
    if isinstance(obj, dict):
        return {_substitute(k, i): _substitute(v, i) for k, v in obj.items()}
    return obj


def _rename(obj: Any, names: dict[str, str]) -> Any:
    """Replace every string value equal to a key of ``names`` (mapping keys are left alone)."""
    if isinstance(obj, str):
        return names.get(obj, obj)
    if isinstance(obj, list):
        return [_rename(v, names) for v in obj]
    if isinstance(obj, dict):
        return {k: _rename(v, names) for k, v in obj.items()}
    return obj


def expand(stages: list[Any]) -> list[dict]:
    """Flatten ``{repeat: N, stages: [...]}`` entries into an explicit stage list (nested repeats allowed)."""
    out: list[dict] = []
    for entry in stages:
        if isinstance(entry, dict) and "repeat" in entry:
            n, body, first = entry.get("repeat"), entry.get("stages"), entry.get("first") or {}
            if not isinstance(n, int) or n < 1 or not isinstance(body, list):
                raise PipelineError(f"repeat: expected {{repeat: <int >= 1>, stages: [...]}}, got {entry!r}")
            if not isinstance(first, dict) or not all(isinstance(v, str) for v in first.values()):
                raise PipelineError(f"repeat.first: expected a mapping of stage names, got {first!r}")
            for i in range(1, n + 1):
                round_body = _substitute(copy.deepcopy(body), i)
                out += expand(_rename(round_body, first) if i == 1 else round_body)
        else:
            out.append(entry)
    return out


def _resolve_config(value: Any, where: str, base: Path | None) -> Path | dict | None:
    check_type(value, str | Path | dict | None, f"{where}.config", "a recipe path or a mapping")
    if value is None or isinstance(value, dict):
        return value
    path = Path(value).expanduser()
    for candidate in [path] + ([base / path] if base is not None and not path.is_absolute() else []):
        if candidate.is_file():
            return candidate.resolve()
    raise PipelineError(f"{where}.config: recipe {value} not found" + (f" (also looked in {base})" if base else ""))


def parse_stage(raw: Any, index: int, base: Path | None = None) -> StageSpec:
    """One stage from its YAML mapping (field checks only; chaining is checked by :func:`validate`)."""
    raw = dict(check_type(raw, dict, f"stages[{index}]", "a mapping with name and type"))
    name = raw.pop("name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PipelineError(f"stages[{index}].name: expected a folder-safe name (letters, digits, _ . -), got {name!r}")
    where = f"stage {name!r}"
    kind = check_type(raw.pop("type", None), StageType, f"{where}.type")
    overrides = check_type(raw.pop("overrides", None) or [], list[str], f"{where}.overrides",
                           "a list of command-line arguments")
    inputs = check_type(raw.pop("inputs", None) or {}, dict[str, str | None], f"{where}.inputs",
                        "a mapping of input name -> stage name (or null)")
    config = _resolve_config(raw.pop("config", None), where, base)
    parse_options(kind, raw, where)  # raw stays the record (fingerprints); runners parse it again
    return StageSpec(name, kind, config, list(overrides), dict(inputs), raw)


def validate(stages: list[StageSpec]) -> list[StageSpec]:
    """Check that the stages chain; fill defaults (a stage needing a model takes the latest earlier fit).

    Raises:
        PipelineError: duplicate name, unknown or later stage referenced, wrong type of referenced
            stage, unknown input, missing config, or a stage needing a model with no fit before it.
    """
    if not stages:
        raise PipelineError("stages: expected at least one stage")
    seen: dict[str, str] = {}
    for s in stages:
        where = f"stage {s.name!r} ({s.type})"
        if s.name in seen:
            raise PipelineError(f"{where}: duplicate stage name {s.name!r}")
        allowed = STAGE_INPUTS[s.type]
        for key in s.inputs:
            if key not in allowed:
                raise PipelineError(f"{where}: unknown input {key!r}; expected {', '.join(allowed) or 'none'}")
        if s.type in ("test", "evaluate", "pseudo_label") and s.inputs.get("model") is None:
            fits = [n for n, t in seen.items() if t == "fit"]
            if not fits:
                raise PipelineError(f"{where}: needs a model but no fit stage comes before it")
            s.inputs["model"] = fits[-1]
        for what, ref in s.references().items():
            later = [t.name for t in stages].index(ref) if ref in [t.name for t in stages] else None
            if ref not in seen:
                state = "which runs later" if later is not None else "which does not exist"
                raise PipelineError(f"{where}: {what} refers to stage {ref!r} {state}")
            key = what.split(".", 1)[1] if what.startswith("inputs.") else None
            kinds = allowed.get(key) if key else None
            if kinds and seen[ref] not in kinds:
                raise PipelineError(f"{where}: {what} refers to {ref!r}, a {seen[ref]} stage; expected a "
                                    f"{' or '.join(kinds)} stage")
        if s.type == "translate" and s.inputs.get("generator") is None:
            raise PipelineError(f"{where}: `inputs.generator` (the fit stage of a translation recipe) is required")
        if s.type == "fit" and s.config is None:
            raise PipelineError(f"{where}: `config` (a recipe path or mapping) is required")
        if s.type == "pseudo_label":
            from domadapt.pseudo.thresholds import build_strategy

            try:
                build_strategy(s.options.get("strategy"))
            except ValueError as e:
                raise PipelineError(f"{where}: {e}") from None
        seen[s.name] = s.type
    return stages


def load_pipeline(source: str | Path | dict, run_dir: str | Path | None = None) -> PipelineSpec:
    """Read, expand and validate a pipeline recipe (a YAML path or an already-loaded mapping).

    Args:
        source: the recipe.
        run_dir: overrides the recipe's ``run_dir``.
    """
    path = None
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        if not path.is_file():
            raise PipelineError(f"{source}: pipeline recipe not found")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise PipelineError(f"{source}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or "stages" not in raw:
        raise PipelineError(f"{source if path else 'pipeline'}: expected a mapping with run_dir, seed and stages")
    unknown = sorted(set(raw) - {"run_dir", "seed", "stages", "overrides", "target_metric", "table_metrics"})
    if unknown:
        raise PipelineError(f"pipeline: unknown key {unknown[0]!r}; expected run_dir, seed, stages, overrides, "
                            "target_metric, table_metrics")
    table_metrics = check_type(raw.get("table_metrics") or [], list[str], "pipeline.table_metrics",
                               "a list of metric names")
    run_dir = run_dir if run_dir is not None else raw.get("run_dir")
    if not run_dir:
        raise PipelineError("pipeline.run_dir: required (or pass --run-dir)")
    seed = check_type(raw.get("seed", 0), int, "pipeline.seed")
    overrides = check_type(raw.get("overrides") or [], list[str], "pipeline.overrides",
                           "a list of command-line arguments")
    check_type(raw["stages"], list, "pipeline.stages", "a list of stages")
    base = path.parent.resolve() if path is not None else None
    stages = validate([parse_stage(r, i, base) for i, r in enumerate(expand(raw["stages"]))])
    return PipelineSpec(Path(run_dir), seed, stages, list(overrides), raw.get("target_metric"), path,
                        list(table_metrics))
