"""Load pretrained weights into a network: a local file, or torchvision's ImageNet weights.

Every network in :mod:`domadapt.models` takes ``weights: str | None``:

* ``None`` — random initialisation, nothing is read;
* a local file (``.pth`` / ``.pt`` / ``.safetensors``) holding a plain state dict or a
  checkpoint with a ``state_dict`` / ``model`` entry (Lightning and most research code). Wrapper
  prefixes such as ``module.`` (DataParallel) or ``model.`` are stripped. The file may hold the
  whole network or only its backbone (e.g. a torchvision ``resnet50-*.pth``): a network passes
  ``backbone_prefix`` and a file none of whose keys carry that prefix is loaded into the backbone;
* ``"imagenet"`` — torchvision's ImageNet weights for the torchvision model named ``kind``
  (needs internet once; torch.hub caches the file). The original ``IMAGENET1K_V1`` weights are
  used, the ones the domain-adaptation literature reports with.

Loading is lenient about *names* (new heads are expected to be missing from a backbone file:
the counts go to ``warnings.warn``) and strict about *shapes* (a mismatch is a ``ValueError``
naming the key), since a silently skipped tensor of the wrong shape means a wrong model.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from domadapt.checkpoint_file import read_checkpoint

SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
"""File suffixes :func:`load_weights` reads."""
NO_WEIGHTS = frozenset({"none", "null", ""})
"""Spellings of "no weights": jsonargparse hands ``--model.init_args.net.init_args.weights=null`` to a nested
network as the string ``'None'``."""

WRAPPER_PREFIXES = ("module.", "model.")
"""Key prefixes added by wrappers (DataParallel, LightningModule attributes) that are stripped."""


def download_failed(what: str, exc: BaseException, url: str | None = None) -> RuntimeError:
    """The one-line error raised when pretrained weights cannot be downloaded.

    Args:
        what: what was being downloaded, e.g. ``"ImageNet weights for resnet50"``.
        exc: the underlying error (kept as ``__cause__`` by the caller's ``raise ... from``).
        url: where the file lives, when known.

    Returns:
        A ``RuntimeError`` to raise.
    """
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = f" from {url}" if url else ""
    return RuntimeError(
        f"could not download {what}{where} ({type(exc).__name__}: {reason}); on a machine with "
        f"internet download the file and pass its local path instead (weights=/path/to/file.pth)"
    )


def fetch_imagenet_state_dict(kind: str) -> dict[str, torch.Tensor]:
    """torchvision's ``IMAGENET1K_V1`` state dict of the model named ``kind`` (downloads once).

    Raises:
        ValueError: torchvision has no ImageNet weights for ``kind``.
        RuntimeError: the download failed (one line, says how to pass a local file).
    """
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(kind)
        entry = enum["IMAGENET1K_V1"]
    except (ValueError, KeyError):
        raise ValueError(f"weights='imagenet': torchvision has no ImageNet weights for {kind!r}") from None
    said = io.StringIO()  # torch.hub's "Downloading: ..." line, kept back unless the download succeeds
    try:
        # Looked up on torch.hub at call time so that tests can replace the downloader.
        with contextlib.redirect_stderr(said):
            state = torch.hub.load_state_dict_from_url(
                entry.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
    except Exception as exc:  # URLError, HTTPError, hash mismatch, ... all mean "no weights"
        raise download_failed(f"ImageNet weights for {kind}", exc, entry.url) from exc
    print(said.getvalue(), end="", file=sys.stderr)
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a local ``.pth`` / ``.pt`` / ``.safetensors`` / ``.ckpt`` file.

    A checkpoint dict with a ``state_dict`` or ``model`` entry is unwrapped. A Lightning checkpoint
    (``.ckpt``) of a domadapt method yields its *network*: the keys under ``net.``, prefix removed
    (a discriminator's ``loss.`` keys and the like are dropped). Pickled files are read with
    :func:`~domadapt.checkpoint_file.read_checkpoint` (``weights_only=True``): no code from the file is executed.

    Raises:
        FileNotFoundError: no such file.
        ValueError: wrong suffix, unreadable file, or no tensors in it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights={str(path)!r}: no such file; expected a local {'/'.join(SUFFIXES)} file, 'imagenet' or None"
        )
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported weights file suffix {path.suffix!r}; expected one of {SUFFIXES}")
    obj = read_checkpoint(path, what="weights")
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint with one, got {type(obj).__name__}")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if path.suffix == ".ckpt" and any(k.startswith("net.") for k in state):
        state = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    if not state:
        raise ValueError(f"{path}: no tensors found; expected a state dict")
    return state


def _strip_wrappers(state: dict[str, torch.Tensor], own: Sequence[str], prefixes: Sequence[str]) -> dict:
    """Strip wrapper prefixes shared by every key, unless the target's own keys use them too."""
    changed = True
    while changed and state:
        changed = False
        for p in prefixes:
            if all(k.startswith(p) for k in state) and not all(k.startswith(p) for k in own):
                state = {k[len(p) :]: v for k, v in state.items()}
                changed = True
    return state


def load_weights(
    module: nn.Module,
    weights: str | os.PathLike | None,
    *,
    kind: str,
    strict: bool = False,
    ignore_prefixes: Sequence[str] = ("fc.",),
    backbone_prefix: str = "",
    strip_prefixes: Sequence[str] = WRAPPER_PREFIXES,
    head_prefixes: Sequence[str] = (),
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> None:
    """Load ``weights`` into ``module`` in place.

    Args:
        module: the network to fill.
        weights: ``None`` (no-op), a local file path, or ``"imagenet"``.
        kind: torchvision model name whose ImageNet weights ``"imagenet"`` selects (e.g.
            ``"resnet50"``); also names the network in messages.
        strict: missing / unexpected keys raise ``ValueError`` instead of a warning.
        ignore_prefixes: keys of the file dropped before loading (its own old head, e.g.
            torchvision's ``fc.``), matched after wrapper prefixes are stripped.
        backbone_prefix: where the backbone lives in ``module`` (e.g. ``"backbone."``). ImageNet
            weights, and a file none of whose keys start with it, are loaded there.
        strip_prefixes: wrapper prefixes stripped from the file's keys when every key has one.
        head_prefixes: keys of the task head (e.g. ``"head."``). A head tensor whose shape differs
            (a model trained for another class count) keeps its initialisation, with a warning,
            instead of raising: a new label set needs a new head, a wrong backbone is a bug.
        convert: renames a local file's keys (after wrapper prefixes are stripped) from another code base's
            layout, e.g. :func:`~domadapt.models.drt_checkpoint.from_drt_layout`.

    Raises:
        ValueError: a tensor's shape differs from the module's (names the key and both shapes),
            no key of the file matches, or ``strict`` and keys do not match.
        RuntimeError: ``"imagenet"`` could not be downloaded (one line).
        FileNotFoundError: a path that does not exist.
    """
    if weights is None or str(weights).strip().lower() in NO_WEIGHTS:
        return
    own = module.state_dict()
    if str(weights) == "imagenet":
        state, source = fetch_imagenet_state_dict(kind), f"ImageNet weights for {kind}"
    else:
        state, source = read_state_dict(weights), str(weights)
        state = _strip_wrappers(state, list(own), strip_prefixes)
        if convert is not None:
            state = convert(state)
    # The file's own old head (torchvision's ``fc.``) never belongs to the new network.
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in ignore_prefixes)}
    if backbone_prefix and not any(k.startswith(backbone_prefix) for k in state):
        state = {backbone_prefix + k: v for k, v in state.items()}  # a backbone-only file
    for key, value in list(state.items()):
        if key in own and own[key].shape != value.shape:
            if any(key.startswith(p) for p in head_prefixes):
                warnings.warn(
                    f"{source}: {key!r} has shape {tuple(value.shape)}, {kind} expects "
                    f"{tuple(own[key].shape)}; the head keeps its initialisation",
                    stacklevel=2,
                )
                del state[key]
                continue
            raise ValueError(
                f"{source}: shape mismatch for {key!r}: file has {tuple(value.shape)}, "
                f"{kind} expects {tuple(own[key].shape)}"
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if len(unexpected) == len(state):
        # Nothing would load: almost always a wrapper prefix we do not know; say what both look like.
        raise ValueError(
            f"{source}: no key matches {kind}; file keys look like {unexpected[:2]}, "
            f"expected keys like {list(own)[:2]}"
        )
    if strict and (missing or unexpected):
        raise ValueError(
            f"{source}: {len(missing)} missing keys (first {missing[:3]}) and {len(unexpected)} unexpected "
            f"keys (first {unexpected[:3]}) for {kind} with strict=True"
        )
    if missing or unexpected:
        warnings.warn(
            f"{source} -> {kind}: {len(state) - len(unexpected)} tensors loaded, {len(missing)} missing "
            f"(first {missing[:3]}), {len(unexpected)} unexpected (first {unexpected[:3]})",
            stacklevel=2,
        )
    module.load_state_dict(state, strict=False)
