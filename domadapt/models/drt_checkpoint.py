"""The DRT authors' checkpoint layout (their ImageNet-pretrained dynamic ResNet-101) -> :class:`DynamicResNet` keys.

The released DRT code (``model/resnet_dra.py``) names a bottleneck's dynamic parts ``conv_s1`` ... ``conv_s4``
(the residual 1x1 kernels ``Phi_k``, ``(C_out, C_in, 1, 1)`` each) and ``fc`` (``Linear(C, C/16) - ReLU -
Linear(C/16, 4)``, the attention on the block input), and loads the file under ``module.features.``
(``resnet_dra.py:104-117``). Ours keeps torchvision's names and puts the dynamic parts in the block's ``conv2``:
``conv2.residual`` ``(K, C_out, C_in)``, ``conv2.squeeze.0`` and ``conv2.to_attention``. Everything else (``conv1``,
``bn*``, ``conv2.weight`` = ``W0``, ``downsample``) has the same name.
"""

from __future__ import annotations

import re

import torch

FEATURES = "features."  # the authors' wrapper: module.features.<ResNetDRA keys>
_CONV_S = re.compile(r"^(layer\d+\.\d+)\.conv_s(\d+)\.weight$")
_FC = re.compile(r"^(layer\d+\.\d+)\.fc\.(0|2)\.weight$")


def is_drt_layout(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses the authors' key names (``...conv_s1.weight``)."""
    return any(_CONV_S.match(k.split(FEATURES, 1)[-1]) for k in state)


def from_drt_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the authors' keys renamed to ours (other state dicts are returned unchanged).

    Only the ``features.`` part of a full checkpoint is kept (the authors' classifiers are not ours); the four
    ``conv_s{k}`` kernels of a block are stacked, in order, into ``conv2.residual``.
    """
    if not is_drt_layout(state):
        return state
    if any(FEATURES in k for k in state):  # a whole checkpoint ([module.]features. + classifiers): the backbone
        state = {k.split(FEATURES, 1)[1]: v for k, v in state.items() if FEATURES in k}
    out: dict[str, torch.Tensor] = {}
    kernels: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in state.items():
        if m := _CONV_S.match(key):
            kernels.setdefault(m[1], {})[int(m[2])] = value
        elif m := _FC.match(key):
            out[f"{m[1]}.conv2.{'squeeze.0' if m[2] == '0' else 'to_attention'}.weight"] = value
        else:
            out[key] = value
    for block, ks in kernels.items():
        out[f"{block}.conv2.residual"] = torch.stack([ks[k].flatten(1) for k in sorted(ks)])  # (K, C_out, C_in)
    return out
