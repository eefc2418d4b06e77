"""Read a ``torch.save`` file (a weights file or a Lightning checkpoint): the one place that calls ``torch.load``.

The ``weights_only`` policy:

* Every file is first read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers of them,
  plus the globals in :data:`SAFE_GLOBALS`. This unpickler runs no code from the file. Checkpoints of domadapt runs
  (``domadapt fit``, pipeline stages, :class:`~domadapt.checkpointing.RandomState`) and plain state dicts read this
  way.
* ``trusted=True`` is for Lightning checkpoints that a user passes to a command or that an earlier pipeline stage
  wrote: ``domadapt export``, a pipeline stage's ``init_from`` / test weights, and pseudo-label generation. If such a
  file holds another Python object (for example a LightningModule of the user's own that saves an object among its
  hyper-parameters), the file is unpickled (``weights_only=False``) so that it loads as it did before this reader
  existed. Unpickling can run code from the file, so pass only checkpoints you trust.
* Weights files (``weights=`` of a network, a translation generator) never fall back: another object is an error.

``.safetensors`` files are read with :func:`safetensors.torch.load_file`.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pickle
from pathlib import Path
from typing import Any

import torch

SAFE_GLOBALS: tuple[type, ...] = (pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath,
                                  pathlib.PureWindowsPath)
"""Globals allowed beyond ``torch.load``'s defaults: paths (hyper-parameters may hold one; building a path runs no
code from the file)."""


def read_checkpoint(path: str | os.PathLike, *, trusted: bool = False, what: str = "checkpoint",
                    error: type[Exception] | None = None) -> Any:
    """The object saved in ``path``, on the CPU.

    Args:
        path: a ``torch.save`` file (``.ckpt``, ``.pth``, ``.pt``, …) or a ``.safetensors`` file.
        trusted: unpickle (``weights_only=False``) a file that holds objects beyond the safe ones; see the module
            docstring for when.
        what: what the file is, for the messages (``"checkpoint"``, ``"weights"``, ``"generator checkpoint"``).
        error: the exception raised for a missing or unreadable file; ``None`` = ``FileNotFoundError`` for a missing
            file and ``ValueError`` for an unreadable one.

    Returns:
        What was saved: usually a state dict ``{name: tensor}`` or a Lightning checkpoint dict.

    Raises:
        FileNotFoundError: no such file: ``"<path>: <what> not found"``.
        ValueError: truncated, corrupt, or (unless ``trusted``) holding unsafe objects:
            ``"<path>: could not read <what> (<first line of the cause>)"``.
    """
    path = Path(path)
    if not path.is_file():
        raise (error or FileNotFoundError)(f"{path}: {what} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        try:
            with _allowing(SAFE_GLOBALS):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # an object outside the allow-list (a corrupt archive is a RuntimeError)
            if not trusted:
                raise
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - truncated archives, pickle errors, ...: one message
        raise (error or ValueError)(f"{path}: could not read {what} ({_cause(e)})") from None


def _allowing(globals_: tuple[type, ...]) -> contextlib.AbstractContextManager:
    """``torch.serialization.safe_globals`` (torch >= 2.5); with older torch only the default allow-list applies."""
    safe = getattr(torch.serialization, "safe_globals", None)
    return safe(list(globals_)) if safe is not None else contextlib.nullcontext()


def _cause(e: Exception) -> str:
    """One line of ``e``: the unsafe global a ``weights_only`` load refused, else the first line."""
    lines = [" ".join(line.split()) for line in str(e).splitlines() if line.strip()]
    refused = [line.split(" Please use")[0] for line in lines if "Unsupported global" in line]
    return (refused or lines or [type(e).__name__])[0]
