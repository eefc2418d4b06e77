"""`EMATeacher`: an exponential-moving-average copy of a network, used as the pseudo labeller.

Mean-teacher style self-training (Tarvainen & Valpola 2017; the teacher of DACS and DAFormer) keeps a frozen copy
``θ_t`` of the student ``θ_s`` and after every optimiser step sets::

    θ_t ← d · θ_t + (1 − d) · θ_s          (d = decay, e.g. 0.999)

optionally with a warm-up of the decay after ``n`` updates, so the teacher follows the student quickly at first:
the mean-teacher ramp ``d_n = min(d, (1 + n) / (10 + n))`` (``warmup="mean_teacher"``) or the running average
``d_n = min(d, 1 − 1/(n + s))`` (``warmup="average"``: the teacher is the plain mean of the students seen until that
is older than ``d`` allows; DACS@cc6a87f trainUDA.py:111-113 with ``s = 1``, the first update copies the student;
DAFormer@e6f6e04 mmseg/models/uda/dacs.py:104-105,217-218 with ``s = 2``, its update before iteration ``k`` uses
``1 − 1/(k + 1)``). The teacher averages out the noise of single steps,
which is what pseudo labels need (METHODS.md §4.3 (2): "the current model (or an EMA teacher)").

Non-float buffers (BatchNorm's ``num_batches_tracked``) are always copied; float buffers (running
statistics) are copied (default) or averaged like parameters. The teacher is a submodule, so its
weights and its update counter are part of the owner's ``state_dict`` and of Lightning checkpoints:
a resumed run continues the same average.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn


class EMATeacher(nn.Module):
    """A frozen copy of ``model`` updated by exponential moving average; it predicts in eval mode.

    Args:
        model: the student network to copy (its current weights are the teacher's start).
        decay: ``d`` in ``[0, 1]`` (0 = copy the student, 1 = never move).
        buffers: ``"copy"`` float buffers from the student, or ``"ema"`` them like parameters.
        warmup: ``"none"`` (``False``): ``d`` from the first update; ``"mean_teacher"`` (``True``):
            ``min(d, (1 + n) / (10 + n))`` after ``n`` updates; ``"average"``: ``min(d, 1 − 1/(n + average_start))``.
        average_start: ``s`` of the ``"average"`` ramp (DACS 1, DAFormer 2), at least 1.
        mode: ``"eval"`` predicts with BatchNorm running statistics and without dropout; ``"train"`` in train mode, so
            BatchNorm normalises each batch with its own statistics (DACS's released teacher); ``"train_no_dropout"``
            in train mode but with dropout and drop-path layers in eval mode (DAFormer's teacher,
            DAFormer@e6f6e04 mmseg/models/uda/dacs.py:263-267). The running statistics a train-mode forward moves are
            replaced by the student's at the next :meth:`update` (``buffers="copy"``).

    Attributes:
        module: the teacher network (``requires_grad=False``).
        num_updates: ``()`` int64 buffer, updates done (saved in checkpoints).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, buffers: Literal["copy", "ema"] = "copy",
                 warmup: bool | Literal["none", "mean_teacher", "average"] = False, average_start: int = 1,
                 mode: Literal["eval", "train", "train_no_dropout"] = "eval") -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMATeacher.decay: expected a value in [0, 1], got {decay}")
        if mode not in ("eval", "train", "train_no_dropout"):
            raise ValueError(f"EMATeacher.mode: expected 'eval', 'train' or 'train_no_dropout', got {mode!r}")
        if buffers not in ("copy", "ema"):
            raise ValueError(f"EMATeacher.buffers: expected 'copy' or 'ema', got {buffers!r}")
        warmup = {True: "mean_teacher", False: "none"}.get(warmup, warmup) if isinstance(warmup, bool) else warmup
        if warmup not in ("none", "mean_teacher", "average"):
            raise ValueError(f"EMATeacher.warmup: expected 'none', 'mean_teacher' or 'average', got {warmup!r}")
        if average_start < 1:
            raise ValueError(f"EMATeacher.average_start: expected an integer >= 1, got {average_start}")
        self.decay, self.buffers, self.warmup, self.mode = float(decay), buffers, warmup, mode
        self.average_start = int(average_start)
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        n = int(self.num_updates)
        if self.warmup == "mean_teacher":
            return min(self.decay, (1.0 + n) / (10.0 + n))
        if self.warmup == "average":
            return min(self.decay, 1.0 - 1.0 / (n + self.average_start))
        return self.decay

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One step ``θ_t ← d · θ_t + (1 − d) · θ_s`` (parameters, and buffers as configured).

        Raises:
            ValueError: ``student`` does not have the teacher's parameter/buffer names.
        """
        d = self.current_decay()
        mine, theirs = dict(self.module.named_parameters()), dict(student.named_parameters())
        mine_b, theirs_b = dict(self.module.named_buffers()), dict(student.named_buffers())
        if mine.keys() != theirs.keys() or mine_b.keys() != theirs_b.keys():
            diff = sorted((mine.keys() ^ theirs.keys()) | (mine_b.keys() ^ theirs_b.keys()))
            raise ValueError(f"EMATeacher.update: student and teacher differ in tensors {diff[:3]}; expected the "
                             "network the teacher was copied from")
        for name, t in mine.items():
            t.lerp_(theirs[name].detach().to(t.dtype), 1.0 - d)  # t + (1 − d)(s − t) = d·t + (1 − d)·s
        for name, t in mine_b.items():
            s = theirs_b[name].detach()
            if self.buffers == "ema" and t.is_floating_point():
                t.lerp_(s.to(t.dtype), 1.0 - d)
            else:
                t.copy_(s)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        """The teacher network's output without gradient, computed in :attr:`mode` (``"eval"``: BatchNorm running
        statistics, no dropout). The module's ``training`` flag follows its owner's otherwise, so Lightning sees no
        module left in eval mode at the start of training."""
        if self.mode == "train_no_dropout":
            return self._forward_without_dropout(*args, **kwargs)
        want = self.mode == "train"
        with torch.no_grad():
            if self.module.training == want:
                return self.module(*args, **kwargs)
            was = self.module.training
            self.module.train(want)
            try:
                return self.module(*args, **kwargs)
            finally:
                self.module.train(was)

    def _forward_without_dropout(self, *args, **kwargs):
        """Forward in train mode with dropout / drop-path layers (``_DropoutNd``, any ``DropPath``) in eval mode; every
        module's ``training`` flag is restored afterwards."""
        flags = [(m, m.training) for m in self.module.modules()]
        self.module.train(True)
        for m in self.module.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ == "DropPath":
                m.training = False
        try:
            with torch.no_grad():
                return self.module(*args, **kwargs)
        finally:
            for m, flag in flags:
                m.training = flag

    def extra_repr(self) -> str:
        return f"decay={self.decay}, buffers={self.buffers!r}, warmup={self.warmup!r}, mode={self.mode!r}"
