"""Typed options of pipeline stages: one dataclass per stage type, read from the stage's own YAML keys.

Any key of a stage other than ``name``, ``type``, ``config``, ``overrides`` and ``inputs`` is an option of its type
(the fields below). :func:`parse_options` checks every value against the field's type hint and gives one-line
errors that name the stage and the field; an ``int`` field also takes the text of an int, which is what
``{i}`` / ``{prev}`` of a ``repeat`` become (``round: "{prev}"``).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from domadapt.pseudo.options import LabelOptions

COMMON_KEYS = ("name", "type", "config", "overrides", "inputs")


class PipelineError(ValueError):
    """An invalid pipeline recipe; the message names the stage and field."""


@dataclass(frozen=True)
class NoOptions:
    """``fit``, ``test`` and ``evaluate`` stages take no options (their recipe says everything)."""


@dataclass(frozen=True)
class PseudoLabelOptions(LabelOptions):
    """Options of a ``pseudo_label`` stage: the :class:`~domadapt.pseudo.options.LabelOptions` of
    :func:`~domadapt.pseudo.generate.generate_pseudo_labels` and its threshold strategy.

    Attributes:
        round: self-training round of progressive strategies; ``None`` = the number of earlier
            ``pseudo_label`` stages.
        strategy: a threshold strategy mapping for :func:`~domadapt.pseudo.thresholds.build_strategy`;
            ``None`` = BDL's class percentile.
    """

    round: int | None = None  # type: ignore[assignment]
    strategy: dict[str, Any] | None = None


@dataclass(frozen=True)
class TranslateOptions:
    """Options of a ``translate`` stage (see :func:`~domadapt.pipeline.translate.translate_dataset`).

    Attributes:
        dataset: a ``{class_path, init_args}`` mapping of the dataset to translate; ``None`` = source
            ``source_index`` of the stage's recipe (by default the generator stage's).
        source_index: which source of the recipe, when ``dataset`` is not given.
        layout, size, batch_size, direction, link_labels, num_workers: arguments of ``translate_dataset``.
    """

    dataset: dict[str, Any] | None = None
    source_index: int = 0
    layout: Literal["auto", "gta5", "synthia", "generic"] = "auto"
    size: tuple[int, int] | None = None
    batch_size: int = 4
    direction: Literal["a2b", "b2a"] = "a2b"
    link_labels: bool = True
    num_workers: int = 0


STAGE_OPTIONS: dict[str, type] = {"fit": NoOptions, "test": NoOptions, "evaluate": NoOptions,
                                  "pseudo_label": PseudoLabelOptions, "translate": TranslateOptions}


def parse_options(kind: str, raw: dict[str, Any], where: str) -> Any:
    """The options dataclass of stage type ``kind`` from a stage's option keys.

    Args:
        kind: the stage type (a key of :data:`STAGE_OPTIONS`).
        raw: the stage's keys other than :data:`COMMON_KEYS`.
        where: how errors name the stage (``"stage 'pl1'"``).

    Raises:
        PipelineError: an unknown key (with a close match, if any) or a value of the wrong type.
    """
    cls = STAGE_OPTIONS[kind]
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), [*COMMON_KEYS, *names], n=1, cutoff=0.75)
            raise PipelineError(f"{where}: unknown key {key!r} for a {kind} stage" +
                                (f" (did you mean {close[0]!r}?)" if close else "") +
                                f"; expected {', '.join(COMMON_KEYS)}" + (f" or {', '.join(names)}" if names else ""))
    hints = typing.get_type_hints(cls)
    return cls(**{k: check_type(v, hints[k], f"{where}.{k}") for k, v in raw.items()})


def check_type(value: Any, hint: Any, where: str, expected: str | None = None) -> Any:
    """``value`` as type ``hint`` (lists become tuples for tuple hints, int text becomes an int).

    Raises:
        PipelineError: ``"<where>: expected <expected, default the hint in words>, got <value>"``.
    """
    ok, out = _match(value, hint)
    if not ok:
        raise PipelineError(f"{where}: expected {expected or _words(hint)}, got {value!r}")
    return out


def _match(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if hint is type(None):
        return value is None, value
    if origin in (typing.Union, types.UnionType):
        return next(((True, out) for ok, out in map(lambda h: _match(value, h), args) if ok), (False, value))
    if origin is Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return True, int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            return False, value
        matched = [_match(v, h) for v, h in zip(value, args)]
        return all(ok for ok, _ in matched), tuple(out for _, out in matched)
    if origin in (list, dict):
        items = value if origin is list else value.values() if isinstance(value, dict) else None
        return isinstance(value, origin) and all(_match(v, args[-1])[0] for v in items), value
    return isinstance(value, hint), value


def _words(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_words(h) for h in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return f"a list of {len(args)} {_words(args[0]).split(' ', 1)[1]}s"
    return {type(None): "null", bool: "true or false", int: "an int", dict: "a mapping"}.get(origin or hint, str(hint))
