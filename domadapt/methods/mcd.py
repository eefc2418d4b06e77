"""MCD: Maximum Classifier Discrepancy (Saito et al., CVPR 2018, https://arxiv.org/abs/1712.02560).

Two classifiers ``C1, C2`` on the network's features and three alternating steps per iteration
(manual optimisation), every forward over the concatenated source + target batch (one BatchNorm
convention for all steps, as TLlib's ``mcd.py``):

* A — ``G, C1, C2`` minimise ``CE_s(C1) + CE_s(C2) + beta (B(C1_t) + B(C2_t))``;
* B — with ``G`` fixed, ``C1, C2`` minimise ``CE_s + beta B - eta d(C1(G(x_t)), C2(G(x_t)))`` (maximise the
  discrepancy ``d = mean |softmax(z1) - softmax(z2)|`` on the target);
* C — with ``C`` fixed, ``G`` minimises ``eta d`` (``num_k`` times);

where ``B`` is the class-balance term :func:`~domadapt.losses.class_balance.class_balance_loss` (TLlib's
``trade_off_entropy``; 0 in Saito's code). Heads are linear (``head_hidden=None``) or MCD's two-hidden-layer heads
with BN and dropout (:class:`~domadapt.layers.mcd_head.MCDHead`, the released digit setting). Prediction averages the
two classifiers' probabilities. Lightning counts every optimiser step, so ``trainer.max_steps`` = iterations ×
(3 + num_k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from domadapt.layers.mcd_head import MCDHead
from domadapt.losses.class_balance import class_balance_loss
from domadapt.losses.discrepancy import ClassifierDiscrepancyLoss
from domadapt.methods.base import DomainAdaptationModule
from domadapt.structures import NetOutput


class MCD(DomainAdaptationModule):
    """Maximum classifier discrepancy with two heads on ``net.features``.

    Args:
        net: network returning features ``(N, D)`` (or ``(N, D, H, W)`` for segmentation).
        num_k: generator steps (C) per iteration.
        head_hidden: width of MCD's two-hidden-layer heads (classification; TLlib 1024, Saito's USPS net 100);
            ``None`` = one linear layer (a 1x1 convolution for segmentation).
        head_dropout: dropout of the hidden-layer heads.
        discrepancy_weight: ``eta``, weight of the discrepancy in steps B and C (TLlib's ``trade_off``).
        balance_weight: ``beta``, weight of the class-balance term on the target in steps A and B.
        generator_momentum: SGD momentum of ``G``'s optimiser (TLlib: 0); ``None`` = ``momentum``.
        **kwargs: :class:`DomainAdaptationModule` arguments (``lr`` for G; heads at ``lr * head_lr_mult``).
    """

    def __init__(self, net: nn.Module, num_k: int = 4, head_hidden: int | None = None, head_dropout: float = 0.5,
                 discrepancy_weight: float = 1.0, balance_weight: float = 0.0,
                 generator_momentum: float | None = None, **kwargs) -> None:
        if num_k < 1:
            raise ValueError(f"MCD.num_k: expected >= 1, got {num_k}")
        if head_hidden is not None and (head_hidden < 1 or net.task != "classification"):
            raise ValueError(f"MCD.head_hidden: expected a positive width for a classification network, or None; "
                             f"got {head_hidden} for a {net.task} network")
        super().__init__(net, **kwargs)
        self.automatic_optimization = False
        d, k = net.num_features, net.num_classes
        if net.task == "segmentation":
            self.c1, self.c2 = nn.Conv2d(d, k, 1), nn.Conv2d(d, k, 1)
        elif head_hidden is None:
            self.c1, self.c2 = nn.Linear(d, k), nn.Linear(d, k)
        else:
            self.c1, self.c2 = MCDHead(d, k, head_hidden, head_dropout), MCDHead(d, k, head_hidden, head_dropout)
        self.discrepancy = ClassifierDiscrepancyLoss()

    @property
    def optimizer_steps_per_batch(self) -> int:  # A: 2 optimisers, B: 1, C: num_k
        return 3 + self.hparams.num_k

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.c1(features), self.c2(features)

    def eval_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of ``C1`` and ``C2`` (the ``agreement`` validator compares their argmax)."""
        return list(self.heads(self.net_output(x).features))

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.heads(self.net_output(x).features)
        return ((z1.softmax(1) + z2.softmax(1)) / 2).clamp_min(1e-12).log()

    def configure_optimizers(self):
        heads = [p for m in (self.c1, self.c2) for p in m.parameters()]
        opt_g = self.build_optimizer([dict(g, lr_mult=1.0) if g.get("name") == "head" else g for g in self.param_groups()])
        if self.hparams.generator_momentum is not None:
            for group in opt_g.param_groups:
                group["momentum"] = self.hparams.generator_momentum
        opt_c = self.build_optimizer([{"params": heads, "lr_mult": self.hparams.head_lr_mult, "name": "classifiers"}])
        return [self.scheduled(opt_g), self.scheduled(opt_c)]

    def _head_logits(self, out_s: NetOutput, out_t: NetOutput) -> tuple[tuple, tuple]:
        """``((z1_s, z2_s), (z1_t, z2_t))``: the heads on the joint batch (their BatchNorms see both domains)."""
        n = out_s.features.shape[0]
        if out_s.features.shape[1:] != out_t.features.shape[1:]:
            return self.heads(out_s.features), self.heads(out_t.features)
        z1, z2 = self.heads(torch.cat([out_s.features, out_t.features]))
        return (z1[:n], z2[:n]), (z1[n:], z2[n:])

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_c = self.optimizers()
        hp = self.hparams
        xs, xt = batch["source"]["image"], batch["target"]["image"]
        y = self.ground_truth(batch["source"])

        def supervised(s: tuple, t: tuple) -> torch.Tensor:
            loss = F.cross_entropy(s[0], y, ignore_index=255) + F.cross_entropy(s[1], y, ignore_index=255)
            if hp.balance_weight:
                loss = loss + hp.balance_weight * (class_balance_loss(t[0]) + class_balance_loss(t[1]))
            return loss

        # A: everything on the source (and the target's class balance)
        s, t = self._head_logits(*self.forward_domains(xs, xt))
        loss_a = supervised(s, t)
        self.check_finite({"task": loss_a})
        opt_g.zero_grad(), opt_c.zero_grad()
        self.manual_backward(loss_a)
        opt_g.step(), opt_c.step()

        # B: classifiers maximise the target discrepancy, generator fixed
        with torch.no_grad():
            out_s, out_t = self.forward_domains(xs, xt)
        s, t = self._head_logits(out_s, out_t)
        disc_b = self.discrepancy(s, t)
        loss_b = supervised(s, t) - hp.discrepancy_weight * disc_b
        self.check_finite({"classifier_step": loss_b})
        opt_c.zero_grad()
        self.manual_backward(loss_b)
        opt_c.step()

        # C: generator minimises the discrepancy, classifiers fixed
        for _ in range(hp.num_k):
            out_s, out_t = self.forward_domains(xs, xt)
            with _frozen(self.c1, self.c2):
                s, t = self._head_logits(out_s, out_t)
            loss_c = hp.discrepancy_weight * self.discrepancy(s, t)
            self.check_finite({"discrepancy": loss_c})
            opt_g.zero_grad()
            self.manual_backward(loss_c)
            opt_g.step()
        self.step_schedulers()
        self.log_terms({"loss": loss_a.detach(), "loss_task": loss_a, "loss_adapt": loss_c,
                        "discrepancy_max_step": disc_b}, batch_size=xs.shape[0])


class _frozen:
    """Context manager: parameters of ``modules`` get no gradient inside."""

    def __init__(self, *modules: nn.Module) -> None:
        self.params = [p for m in modules for p in m.parameters()]

    def __enter__(self):
        self.flags = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p, f in zip(self.params, self.flags):
            p.requires_grad_(f)
