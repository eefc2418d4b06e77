"""DRT: Dynamic (residual) Transfer for multi-source domain adaptation (Li et al., CVPR 2021,
https://arxiv.org/abs/2103.10583; METHODS.md §3).

The sources are merged into one labelled stream **without domain labels**; the sample-dependent
(dynamic) backbone is what lets one model serve every source. On top of the network's features
``f = G(cat[x_s, x_t])`` (one forward, shared BatchNorm statistics) two 3-layer classifiers ``F1, F2``
are trained with one backward per iteration::

    L = LS_CE(F1(f_s), y) + LS_CE(F2(f_s), y)                            label smoothing eps
      + w(p) * (gamma * [L_div(F1(f_t)) + L_div(F2(f_t))]                 class balance
                - eta * mean |softmax(F1(R(f_t))) - softmax(F2(R(f_t)))|)  discrepancy through R = GRL(lambda)

with ``LS_CE = -sum_c w_c log softmax(z)_c`` (``w_y = 1 - eps``, ``w_c = eps / (C - 1)`` otherwise),
``L_div(z) = -mean_c log(mean_b softmax(z)_bc + 1e-6)`` and ``w(p)`` the base class's adaptation
weight (1 by default). The classifiers *ascend* ``eta * L_dis``; through the gradient-reversal layer
the feature extractor *descends* ``lambda * eta * L_dis`` (MCD's min-max in a single step). The
network's own head is unused and frozen. Prediction: per sample, the classifier with the larger
maximum logit.

Defaults are the released code's (``eta = 50``, ``gamma = 0.01``, ``lambda = 4``, ``eps = 0.01``).
Self-training (DRT+ST) is not implemented here; the hook: a target batch that carries ``label``
(pseudo labels, 255 = ignore) adds ``pseudo_label_weight * [CE(F1(f_t), y_t) + CE(F2(f_t), y_t)]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from domadapt import schedules
from domadapt.layers.dynamic_conv import set_progress
from domadapt.layers.grl import reverse_gradient
from domadapt.layers.mcd_head import MCDHead
from domadapt.losses.class_balance import class_balance_loss
from domadapt.losses.functional import l1_discrepancy
from domadapt.losses.pseudo_label import pseudo_label_cross_entropy
from domadapt.methods.base import DomainAdaptationModule, datamodule_of
from domadapt.structures import IGNORE_INDEX


def label_smoothed_cross_entropy(logits: Tensor, target: Tensor, eps: float, reduction: str = "mean") -> Tensor:
    """DRT's label-smoothed cross-entropy ``-(1-eps) log p_y - eps/(C-1) sum_{c != y} log p_c``.

    Samples whose target is 255 are ignored (``"mean"`` averages over the others, 0 if none).

    Shape:
        logits ``(N, C)``, target ``(N,)`` -> ``()`` (``"mean"``) or ``(N,)`` (``"none"``, 0 where ignored).
    """
    logp = F.log_softmax(logits, dim=1)  # (N, C)
    valid = target != IGNORE_INDEX
    y = target.where(valid, torch.zeros_like(target))
    off = eps / (logits.shape[1] - 1)
    loss = -(1.0 - eps - off) * logp.gather(1, y[:, None]).squeeze(1) - off * logp.sum(1)  # (N,)
    loss = loss * valid
    if reduction == "none":
        return loss
    return loss.sum() / valid.sum().clamp_min(1)


def validate_sources(sources: Sequence, target) -> None:
    """Refuse a source that is the target domain (leave-one-domain-out would leak the target).

    Datasets are compared by type, ``root`` and ``domain_name``; a dataset without ``domain_name`` is
    not checked.

    Raises:
        ValueError: naming the offending source.
    """
    def key(ds):
        name = getattr(ds, "domain_name", None)
        return None if name is None else (type(ds).__name__, str(getattr(ds, "root", "")), name)

    tkey = key(target)
    for i, ds in enumerate(sources):
        if tkey is not None and key(ds) == tkey:
            raise ValueError(f"DRT: source {i} ({ds.describe()}) is the target domain {tkey[2]!r}; "
                             "multi-source adaptation expects the target left out of the sources")


class DRT(DomainAdaptationModule):
    """DRT training (METHODS.md §3.3) on any classification network's features.

    Args:
        net: classification network (a :class:`~domadapt.models.DynamicResNet` in the paper); only its
            ``features`` are used.
        classifier_width: hidden width of the two classifiers (1000).
        classifier_dropout: dropout of the classifiers (0.5).
        label_smoothing: ``eps`` (0.01; 0.1 for infograph and quickdraw in the released scripts).
        balance_weight: ``gamma``, weight of the class-balance term (0.01).
        discrepancy_weight: ``eta``, weight of the discrepancy term (50).
        grl_coeff: ``lambda``, gradient-reversal coefficient between features and classifiers (4).
        classifier_lr_mult: learning-rate multiplier of the classifiers (10: lr 1e-2 for lr 1e-3).
        use_domain_labels: ablation: average the source loss per source domain (each source present in
            the batch weighs the same, whatever its share of the batch) instead of per sample. DRT uses no
            domain labels (``False``).
        pseudo_label_weight: weight of the target pseudo-label CE, used only when the target batch carries
            ``label`` (the DRT+ST hook).
        lr_milestones: progress values at which the learning rate is multiplied by ``lr_gamma`` (on top of
            ``lr_schedule``); DRT's epochs 5 and 10 of 15 are ``[0.3333333333333333, 0.6666666666666666]``.
        lr_gamma: factor applied at each milestone.
        **kwargs: :class:`DomainAdaptationModule` arguments (``lr`` = backbone lr; the dynamic
            attention/residual parameters get ``lr * head_lr_mult``).
    """

    def __init__(
        self,
        net: nn.Module,
        classifier_width: int = 1000,
        classifier_dropout: float = 0.5,
        label_smoothing: float = 0.01,
        balance_weight: float = 0.01,
        discrepancy_weight: float = 50.0,
        grl_coeff: float = 4.0,
        classifier_lr_mult: float = 10.0,
        use_domain_labels: bool = False,
        pseudo_label_weight: float = 1.0,
        lr_milestones: tuple[float, ...] = (),
        lr_gamma: float = 0.1,
        **kwargs,
    ) -> None:
        if getattr(net, "task", None) != "classification":
            raise TypeError(f"DRT.net: expected a classification network, got task {getattr(net, 'task', None)!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"DRT.label_smoothing: expected 0 <= eps < 1, got {label_smoothing}")
        super().__init__(net, **kwargs)
        if hasattr(net, "head"):  # features only: the network's own classifier never trains
            net.head.requires_grad_(False)
        d, k = net.num_features, net.num_classes
        self.c1 = MCDHead(d, k, classifier_width, classifier_dropout, small_init=True)
        self.c2 = MCDHead(d, k, classifier_width, classifier_dropout, small_init=True)

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        set_progress(self.net, self.progress)  # attention temperature, a pure function of progress

    def setup(self, stage: str) -> None:
        dm = datamodule_of(self)
        if stage == "fit" and dm is not None and hasattr(dm, "sources"):
            validate_sources(dm.sources, dm.target)

    def source_loss(self, logits: Tensor, y: Tensor, domain: Tensor | None) -> Tensor:
        """Label-smoothed CE of one classifier, per sample or (``use_domain_labels``) per source domain."""
        eps = self.hparams.label_smoothing
        if not self.hparams.use_domain_labels or domain is None:
            return label_smoothed_cross_entropy(logits, y, eps)
        per_sample = label_smoothed_cross_entropy(logits, y, eps, reduction="none")
        valid = y != IGNORE_INDEX
        means = [per_sample[(domain == d) & valid].mean() for d in domain[valid].unique()]
        return torch.stack(means).mean() if means else logits.sum() * 0.0

    def loss_terms(self, batch: dict) -> dict[str, Tensor]:
        """Every term of the DRT objective for one batch (unweighted) and the total ``loss``."""
        src, tgt = batch["source"], batch["target"]
        xs, xt = src["image"], tgt["image"]
        n = xs.shape[0]
        if xs.shape[1:] == xt.shape[1:]:
            f = self.net_output(torch.cat([xs, xt])).features  # (2B, D): one forward, shared BN statistics
        else:
            f = torch.cat([self.net_output(xs).features, self.net_output(xt).features])
        z1, z2 = self.c1(f), self.c2(f)  # (2B, K) each, dropout active
        y, dom = src["label"], src.get("domain")
        terms = {"task": self.source_loss(z1[:n], y, dom) + self.source_loss(z2[:n], y, dom),
                 "balance": class_balance_loss(z1[n:]) + class_balance_loss(z2[n:])}
        rev = reverse_gradient(f[n:], self.hparams.grl_coeff)  # classifiers ascend, G descends lambda * eta * L_dis
        terms["discrepancy"] = l1_discrepancy(self.c1(rev), self.c2(rev))  # second pass: new dropout masks
        hp = self.hparams
        w = self.adaptation_coefficient()
        loss = terms["task"] + w * (hp.balance_weight * terms["balance"] - hp.discrepancy_weight * terms["discrepancy"])
        if "label" in tgt and hp.pseudo_label_weight > 0:  # DRT+ST hook: pseudo labels, 255 = ignore
            terms["pseudo"] = (pseudo_label_cross_entropy(z1[n:], tgt["label"], IGNORE_INDEX)
                               + pseudo_label_cross_entropy(z2[n:], tgt["label"], IGNORE_INDEX))
            loss = loss + hp.pseudo_label_weight * terms["pseudo"]
        return {"loss": loss, **terms}

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms = self.loss_terms(batch)
        self.check_finite(terms)
        self.log_terms({("loss" if k == "loss" else f"loss_{k}"): v for k, v in terms.items()},
                       batch_size=batch["source"]["image"].shape[0])
        return terms["loss"]

    # ------------------------------------------------------------------ evaluation
    def heads(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.c1(features), self.c2(features)

    def eval_heads(self, x: Tensor) -> list[Tensor]:
        """Logits of ``F1`` and ``F2`` (the ``agreement`` validator compares their argmax)."""
        return list(self.heads(self.net_output(x).features))

    def eval_logits(self, x: Tensor) -> Tensor:
        """Per sample, the logits of the classifier whose maximum logit is larger (ties: ``F1``)."""
        z1, z2 = self.heads(self.net_output(x).features)
        first = z1.max(1).values >= z2.max(1).values  # (N,)
        return torch.where(first[:, None], z1, z2)

    # ------------------------------------------------------------------ optimisation
    def extra_param_groups(self) -> list[dict]:
        params = [p for m in (self.c1, self.c2) for p in m.parameters()]
        return [{"params": params, "lr_mult": self.hparams.classifier_lr_mult, "name": "classifiers"}]

    def lr_lambda(self, step: int) -> float:
        """``lr_schedule(p) * lr_gamma ** #(milestones <= p)`` after ``step`` iterations."""
        p = schedules.progress(step, self.horizon)
        hp = self.hparams
        return schedules.get_schedule(hp.lr_schedule)(p) * schedules.multistep(p, tuple(hp.lr_milestones), hp.lr_gamma)


__all__ = ["DRT", "class_balance_loss", "label_smoothed_cross_entropy", "validate_sources"]
