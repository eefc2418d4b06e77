"""Temperature sharpening of soft pseudo labels (the "label sharpening" of our CDSSL reading, METHODS.md §4.3 (2)).

For class probabilities ``p`` (summing to 1 along the class axis) and a temperature ``T > 0``::

    sharpen(p, T)_c = p_c^(1/T) / Σ_k p_k^(1/T)

``T < 1`` moves mass towards the most probable class (``T -> 0`` gives the one-hot arg-max, the hard
pseudo label), ``T = 1`` returns ``p`` renormalised, ``T > 1`` flattens. Computed in log space as
``softmax(log p / T)``, so tiny probabilities do not underflow before they are renormalised; for
``p = softmax(z)`` this equals ``softmax(z / T)``.
"""

from __future__ import annotations

import numpy as np
import torch

_TINY = 1e-30  # log(0) guard: a zero probability stays (numerically) zero after sharpening


def sharpen(probs: torch.Tensor | np.ndarray, temperature: float, dim: int = 1) -> torch.Tensor | np.ndarray:
    """Sharpen class probabilities with temperature ``T`` (formula in the module docstring).

    Args:
        probs: probabilities, non-negative, classes along ``dim``; a tensor or a NumPy array.
        temperature: ``T > 0``.
        dim: the class axis (1 for ``(N, K)`` and ``(N, K, H, W)``).

    Returns:
        Sharpened probabilities, same shape and type as ``probs`` (float), summing to 1 along ``dim``.

    Shape:
        ``(N, K)`` or ``(N, K, H, W)`` (any shape with the classes on ``dim``).
    """
    if not temperature > 0:
        raise ValueError(f"sharpen.temperature: expected T > 0, got {temperature}")
    as_numpy = isinstance(probs, np.ndarray)
    p = torch.from_numpy(probs) if as_numpy else probs
    if not p.is_floating_point():
        p = p.float()
    out = torch.softmax(p.clamp_min(_TINY).log() / temperature, dim=dim)
    return out.numpy() if as_numpy else out
