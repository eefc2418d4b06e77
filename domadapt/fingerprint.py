"""The one fingerprint of a file and of a model: what manifests record to say which weights produced an output."""

from __future__ import annotations

import hashlib
import os

import torch
from torch import nn


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_sha256(module: nn.Module) -> str:
    """Hex SHA-256 over the names, shapes, dtypes and bytes of a module's state dict (sorted by name)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


__all__ = ["file_sha256", "state_sha256"]
