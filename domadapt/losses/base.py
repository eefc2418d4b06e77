"""The alignment-loss contract (DESIGN.md §3) and the input checks every loss shares.

An alignment loss is an ``nn.Module`` called as ``loss(source, target)`` that returns a scalar the
feature extractor minimises. Adversarial losses own their discriminator as a submodule and reverse
gradients internally, so one optimiser step trains both sides; losses whose method must step a
separate optimiser set ``alternating = True``.

A user loss only subclasses :class:`AlignmentLoss`::

    class MeanDistance(AlignmentLoss):
        input_kind = "features"
        supports = frozenset({"classification"})

        def forward(self, source, target):
            self.check_inputs(source, target)
            return (source.mean(0) - target.mean(0)).pow(2).sum()

and is named in a recipe by ``class_path: mypkg.MeanDistance`` -- there is no registry to edit.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

InputKind = Literal["features", "logits", "probs", "features+logits", "logits+logits"]
"""What a method feeds a loss.

``"features"``: the network's representation; ``"logits"`` / ``"probs"``: class scores before /
after softmax; ``"features+logits"``: a tuple ``(features, logits)`` per domain;
``"logits+logits"``: a tuple ``(logits_c1, logits_c2)`` of two classifiers per domain.
"""

_RANKS = {"classification": 2, "segmentation": 4}
_SHAPES = {"classification": "(N, {d})", "segmentation": "(N, {d}, H, W)"}


class AlignmentLoss(nn.Module):
    """Base class: ``forward(source, target) -> scalar``, minimised w.r.t. the feature extractor.

    Class attributes describe the loss to the method that uses it:

    Attributes:
        input_kind: what the method should feed it (see :data:`InputKind`).
        supports: input ranks it accepts: ``"classification"`` = ``(N, D)``,
            ``"segmentation"`` = ``(N, D, H, W)``.
        alternating: ``True`` when the method must step a separate optimiser (e.g. a discriminator
            trained apart from the generator, or MCD's three steps).
        uses_source: ``False`` when the source argument is ignored (target-only losses such as
            entropy minimisation); the call shape stays ``loss(source, target)``.
        is_divergence: ``True`` for statistical distances between the two batches: ``loss(x, x)``
            is zero (in expectation for unbiased estimators).
    """

    input_kind: ClassVar[InputKind] = "features"
    supports: ClassVar[frozenset[str]] = frozenset({"classification"})
    alternating: ClassVar[bool] = False
    uses_source: ClassVar[bool] = True
    is_divergence: ClassVar[bool] = False

    def forward(self, source: Tensor | tuple[Tensor, ...], target: Tensor | tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(source, target)")

    def set_progress(self, p: float) -> None:
        """Receive training progress ``p`` in ``[0, 1]``; the default ignores it.

        Losses with schedules (GRL coefficient) store ``p`` and compute their schedule as a pure
        function of it, so a resumed run that sets the same ``p`` behaves identically.
        """

    def extra_logs(self) -> dict[str, Tensor]:
        """Detached diagnostics of the last call (e.g. discriminator accuracy); default none."""
        return {}

    # ------------------------------------------------------------------ input checks
    def check_inputs(self, source: Tensor, target: Tensor, what: str | None = None) -> None:
        """Validate a ``(source, target)`` pair against ``supports``; raise a one-line ``ValueError``.

        Checks: both are floating tensors; ranks are ones the loss supports and agree; the
        channel widths (dim 1) agree.

        Args:
            source: source-domain input.
            target: target-domain input.
            what: name of dim 1 in messages; default ``"classes"`` for logits/probs inputs and
                ``"features"`` otherwise.
        """
        what = what or self._dim_name()
        for role, x in (("source", source), ("target", target)):
            check_tensor(self, role, x, what)
        if source.dim() != target.dim():
            raise ValueError(
                f"{type(self).__name__}: source is {source.dim()}-D but target is {target.dim()}-D; "
                "expected both (N, D) or both (N, D, H, W)"
            )
        if source.shape[1] != target.shape[1]:
            raise ValueError(
                f"{type(self).__name__}: source has {source.shape[1]} {what} but target has "
                f"{target.shape[1]}; expected the same width {'C' if what == 'classes' else 'D'}"
            )

    def check_target(self, target: Tensor, what: str | None = None) -> None:
        """Validate the target alone (for losses that ignore the source); see :meth:`check_inputs`."""
        check_tensor(self, "target", target, what or self._dim_name())

    def _dim_name(self) -> str:
        """Name of dim 1 in messages: ``"classes"`` for logits/probs inputs, else ``"features"``."""
        return "classes" if self.input_kind in ("logits", "probs", "logits+logits") else "features"


def check_tensor(loss: AlignmentLoss, role: str, x: object, what: str = "features") -> None:
    """Check that ``x`` is a floating tensor of a rank ``loss.supports``; one-line ``ValueError``."""
    name = type(loss).__name__
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: {role} is a {type(x).__name__}; expected a torch.Tensor")
    if not x.is_floating_point():
        raise ValueError(f"{name}: {role} has dtype {x.dtype}; expected a floating-point tensor")
    ranks = {_RANKS[s] for s in loss.supports}
    if x.dim() not in ranks:
        d = "C" if what == "classes" else "D"
        expected = " or ".join(_SHAPES[s].format(d=d) for s in sorted(loss.supports))
        only = ""
        if len(loss.supports) == 1:
            only = f" ({name} supports {next(iter(loss.supports))} only)"
        raise ValueError(f"{name}: {role} has shape {tuple(x.shape)}; expected {expected}{only}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: {role} is an empty batch; expected at least one sample")


def unpack_pair(loss: AlignmentLoss, role: str, x: object, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    """Check that ``x`` is a 2-tuple of tensors with the same batch size and return it.

    Args:
        loss: the calling loss (for the message).
        role: ``"source"`` or ``"target"``.
        x: the argument received.
        names: names of the two members, e.g. ``("features", "logits")``.
    """
    name = type(loss).__name__
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(
            f"{name}: {role} is a {type(x).__name__}; expected a tuple ({names[0]}, {names[1]})"
        )
    a, b = x
    for member, t in zip(names, (a, b)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name}: {role} {member} is a {type(t).__name__}; expected a torch.Tensor")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name}: {role} {names[0]} has {a.shape[0]} rows but {names[1]} has {b.shape[0]}; "
            "expected the same batch size"
        )
    return a, b


def as_samples(x: Tensor) -> Tensor:
    """View ``(N, D)`` as is and ``(N, D, H, W)`` as ``(N*H*W, D)`` pixel samples."""
    if x.dim() == 4:
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # (N*H*W, D)
    return x


def global_pool(x: Tensor) -> Tensor:
    """``(N, D)`` as is; ``(N, D, H, W)`` averaged over ``H, W`` to ``(N, D)``."""
    return x.mean(dim=(2, 3)) if x.dim() == 4 else x


def _no_grad_copy(module: nn.Module) -> dict[str, Tensor]:
    """Parameters and buffers of ``module`` detached (for a call that must not train it)."""
    state = {k: v.detach() for k, v in module.named_parameters()}
    state.update(dict(module.named_buffers()))
    return state


def call_frozen(module: nn.Module, x: Tensor) -> Tensor:
    """Run ``module(x)`` with its parameters detached: gradients reach ``x`` but not ``module``.

    Used for the generator-side term of alternating adversarial losses so that it never leaves
    gradients in the discriminator, whatever the method does with ``requires_grad``.
    """
    return torch.func.functional_call(module, _no_grad_copy(module), (x,))


__all__ = [
    "AlignmentLoss",
    "InputKind",
    "as_samples",
    "call_frozen",
    "check_tensor",
    "global_pool",
    "unpack_pair",
]
