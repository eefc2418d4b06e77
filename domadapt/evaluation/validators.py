"""Unsupervised model-selection scores ("validators"): computed from target predictions, no target labels.

Unsupervised adaptation has no labelled target data to pick a checkpoint or a hyper-parameter with;
these scores stand in for target accuracy. With ``p_i`` the softmax vector of sample (or pixel) ``i``
of ``N`` and ``H(q) = -sum_k q_k log q_k`` (natural log):

* ``entropy``   ``(1/N) sum_i H(p_i)``: confident predictions (lower is better);
* ``info_max``  ``H((1/N) sum_i p_i) - (1/N) sum_i H(p_i)``: confident *and* diverse (higher is better);
* ``snd``       soft neighbourhood density (Saito et al., ICCV 2021, https://arxiv.org/abs/2108.10860):
  rows of ``P`` L2-normalised, ``S = P P^T`` without its diagonal, ``A = softmax_row(S / tau)``
  (``tau = 0.05``), score ``(1/M) sum_i H(A_i)`` (higher is better: dense target clusters);
* ``agreement`` fraction of samples/pixels where the argmax of two heads agrees (MCD/DRT classifiers, a
  teacher/student pair; higher is better).

Each validator is a torchmetrics :class:`~torchmetrics.Metric` fed batch by batch (``update(probs,
extra)``), so its value under DDP equals the single-process value (``snd``: over the union of the
ranks' subsamples). Segmentation probabilities ``(N, K, H, W)`` count every pixel as one sample.
:class:`~domadapt.methods.DomainAdaptationModule` logs them as ``val/target/unsup/<name>``; the
``unsup`` in the key says that no target label was used (unlike ``oracle/…``, see
:mod:`domadapt.evaluation.oracle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def check_probs(probs: Tensor, where: str) -> Tensor:
    """``probs`` detached, after checking it is ``(N, K)`` or ``(N, K, H, W)`` (class dimension 1)."""
    if probs.ndim not in (2, 4):
        raise ValueError(f"{where}: expected (N, K) or (N, K, H, W) probabilities, got shape {tuple(probs.shape)}")
    return probs.detach()


def entropy_rows(p: Tensor) -> Tensor:
    """``H(p) = -sum_k p_k log p_k`` over dimension 1 (``0 log 0 = 0``).

    Shape:
        ``(N, K)`` -> ``(N,)``; ``(N, K, H, W)`` -> ``(N, H, W)``.
    """
    return torch.special.entr(p).sum(1)


def sample_rows(probs: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` of the flattened ``(N * H * W, K)`` view of ``probs``, without flattening a copy of all.

    Shape:
        ``probs`` ``(N, K)`` / ``(N, K, H, W)``, ``index`` ``(M,)`` -> ``(M, K)``.
    """
    if probs.ndim == 2:
        return probs[index]
    hw, w = probs.shape[2] * probs.shape[3], probs.shape[3]
    n, rest = index // hw, index % hw
    return probs[n, :, rest // w, rest % w]  # advanced indices around a slice: (M, K)


def num_rows(probs: Tensor) -> int:
    """Samples/pixels in ``probs``: ``N`` or ``N * H * W``."""
    return probs.numel() // probs.shape[1]


class Validator(Metric):
    """A label-free score of target predictions, accumulated over batches.

    Subclasses set ``name``, ``mode`` (``"min"``: lower is better, ``"max"``: higher is better),
    ``decomposable`` (streaming over batches equals one pass over all data) and ``needs_heads``
    (``update`` needs the per-head probabilities in ``extra``).

    Shape:
        ``update(probs, extra)``: ``probs`` ``(N, K)`` / ``(N, K, H, W)`` softmax probabilities;
        ``extra`` a sequence of same-shaped per-head probabilities (only when ``needs_heads``).
        ``compute()`` -> ``()`` float64.
    """

    name: ClassVar[str] = ""
    mode: ClassVar[Literal["min", "max"]] = "max"
    decomposable: ClassVar[bool] = True
    needs_heads: ClassVar[bool] = False
    is_differentiable = False
    full_state_update = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.higher_is_better = cls.mode == "max"  # torchmetrics' flag, a class constant

    def update(self, probs: Tensor, extra: Sequence[Tensor] | None = None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Entropy(Validator):
    """Mean prediction entropy ``(1/N) sum_i H(p_i)`` (lower is better)."""

    name, mode = "entropy", "min"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, extra: Sequence[Tensor] | None = None) -> None:
        h = entropy_rows(check_probs(probs, "entropy"))  # (N,) / (N, H, W)
        self.total += h.sum(dtype=torch.float64)
        self.count += h.numel()

    def compute(self) -> Tensor:
        return self.total / self.count.clamp_min(1)


class InfoMax(Validator):
    """Information maximisation ``H(mean_i p_i) - mean_i H(p_i)`` (higher is better)."""

    name, mode = "info_max", "max"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The class sums are kept per class so that K need not be known in advance: (K,) after the first update.
        self.add_state("prob_sum", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("entropy_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, extra: Sequence[Tensor] | None = None) -> None:
        p = check_probs(probs, "info_max")
        k = p.shape[1]
        if self.prob_sum.numel() == 0:
            self.prob_sum = p.new_zeros(k, dtype=torch.float64)
        elif self.prob_sum.numel() != k:
            raise ValueError(f"info_max: probs have {k} classes, earlier batches had {self.prob_sum.numel()}")
        self.prob_sum += p.sum([d for d in range(p.ndim) if d != 1], dtype=torch.float64)  # (K,)
        self.entropy_sum += entropy_rows(p).sum(dtype=torch.float64)
        self.count += num_rows(p)

    def compute(self) -> Tensor:
        n = self.count.clamp_min(1)
        return entropy_rows((self.prob_sum / n)[None])[0] - self.entropy_sum / n


class SoftNeighborhoodDensity(Validator):
    """Soft neighbourhood density (Saito et al., ICCV 2021), on a bounded random subsample.

    Every incoming sample/pixel draws a key ``u ~ U(0, 1)`` from a generator seeded with ``seed`` at
    every :meth:`reset`; the ``max_points`` smallest keys seen so far are kept (a uniform random
    subset of everything seen, memory ``O(max_points * K)``). With all ``M`` kept rows::

        q_i = p_i / ||p_i||,  S_ij = q_i . q_j / tau (i != j),  A_i = softmax_j(S_ij),
        SND = (1/M) sum_i H(A_i)

    The diagonal is removed (``-inf`` before the softmax), so a point is never its own neighbour.

    Args:
        max_points: most samples/pixels kept (``M``); the pairwise matrix is ``M x M``.
        temperature: ``tau``.
        seed: seed of the subsampling generator.
    """

    name, mode = "snd", "max"
    decomposable = False  # pairwise; streaming equals one pass only while everything fits in max_points

    def __init__(self, max_points: int = 2048, temperature: float = 0.05, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_points < 2:
            raise ValueError(f"snd.max_points: expected >= 2, got {max_points}")
        if temperature <= 0:
            raise ValueError(f"snd.temperature: expected > 0, got {temperature}")
        self.max_points, self.temperature, self.seed = int(max_points), float(temperature), int(seed)
        self.add_state("points", [], dist_reduce_fx="cat")  # [(M, K)] kept probability rows
        self.add_state("keys", [], dist_reduce_fx="cat")  # [(M,)] their random keys
        self._generator = torch.Generator().manual_seed(self.seed)

    def reset(self) -> None:
        super().reset()
        self._generator = torch.Generator().manual_seed(self.seed)

    def _smallest(self, points: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        if keys.numel() <= self.max_points:
            return points, keys
        idx = keys.topk(self.max_points, largest=False).indices.sort().values  # keep arrival order
        return points[idx], keys[idx]

    def update(self, probs: Tensor, extra: Sequence[Tensor] | None = None) -> None:
        probs = check_probs(probs, "snd")
        keys = torch.rand(num_rows(probs), generator=self._generator).to(probs.device)  # (P,) one per sample/pixel
        # At most max_points rows of this batch are gathered, never a flattened copy of the whole batch.
        if keys.numel() > self.max_points:
            idx = keys.topk(self.max_points, largest=False).indices.sort().values
            p, keys = sample_rows(probs, idx), keys[idx]  # (max_points, K), (max_points,)
        else:
            p = sample_rows(probs, torch.arange(keys.numel(), device=probs.device))
        if self.points:
            p, keys = self._smallest(torch.cat([dim_zero_cat(self.points), p]), torch.cat([dim_zero_cat(self.keys), keys]))
        self.points, self.keys = [p.float()], [keys]

    def compute(self) -> Tensor:
        if not self.points:
            return torch.tensor(float("nan"), dtype=torch.float64)
        # Under DDP the ranks' subsamples are concatenated: select again so that M stays bounded.
        p, _ = self._smallest(dim_zero_cat(self.points), dim_zero_cat(self.keys))
        if p.shape[0] < 2:
            return torch.tensor(float("nan"), dtype=torch.float64)
        q = torch.nn.functional.normalize(p.double(), dim=1)  # (M, K)
        sim = q @ q.T / self.temperature  # (M, M)
        sim.fill_diagonal_(float("-inf"))
        return entropy_rows(sim.softmax(1)).mean()


class HeadAgreement(Validator):
    """Fraction of samples/pixels whose argmax agrees between two heads (higher is better).

    ``extra`` holds the heads' probabilities (or logits: only the argmax is used); the first two count.
    """

    name, mode = "agreement", "max"
    needs_heads = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("agree", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, extra: Sequence[Tensor] | None = None) -> None:
        if extra is None or len(extra) < 2:
            raise ValueError(f"agreement: expected two heads' probabilities in `extra`, got {0 if extra is None else len(extra)}")
        a, b = (check_probs(h, "agreement").argmax(1) for h in extra[:2])  # (N,) / (N, H, W) each
        if a.shape != b.shape:
            raise ValueError(f"agreement: the two heads disagree in shape: {tuple(extra[0].shape)} vs {tuple(extra[1].shape)}")
        self.agree += (a == b).sum()
        self.count += a.numel()

    def compute(self) -> Tensor:
        return self.agree.double() / self.count.clamp_min(1)


VALIDATORS: dict[str, type[Validator]] = {cls.name: cls for cls in (Entropy, InfoMax, SoftNeighborhoodDensity, HeadAgreement)}
"""Every validator by name; tests parametrize over :func:`list_validators`."""


def list_validators() -> list[str]:
    """Names of the available validators, sorted."""
    return sorted(VALIDATORS)


def check_validator_names(names: Sequence[str], where: str = "validators") -> tuple[str, ...]:
    """``names`` as a tuple, or a one-line ``ValueError`` naming the unknown ones and the valid ones."""
    if isinstance(names, str):  # a bare string would be read letter by letter
        names = (names,)
    bad = [n for n in names if n not in VALIDATORS]
    if bad:
        raise ValueError(f"{where}: unknown validator(s) {bad}; expected names from {list_validators()}")
    return tuple(names)


def build_validators(names: Sequence[str]) -> dict[str, Validator]:
    """Fresh validators for ``names`` (checked with :func:`check_validator_names`)."""
    return {n: VALIDATORS[n]() for n in check_validator_names(names)}


__all__ = ["VALIDATORS", "Entropy", "HeadAgreement", "InfoMax", "SoftNeighborhoodDensity", "Validator",
           "build_validators", "check_validator_names", "list_validators"]
