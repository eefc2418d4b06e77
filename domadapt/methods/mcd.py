"""MCD: Maximum Classifier Discrepancy (Saito et al., CVPR 2018, https://arxiv.org/abs/1712.02560).

Two classifiers ``C1, C2`` on the network's features and three alternating steps per iteration
(manual optimisation):

* A — ``G, C1, C2`` minimise the source cross-entropy of both classifiers;
* B — with ``G`` fixed, ``C1, C2`` minimise ``CE_s - d(C1(G(x_t)), C2(G(x_t)))`` (maximise the
  discrepancy ``d = mean |softmax(z1) - softmax(z2)|`` on the target);
* C — with ``C`` fixed, ``G`` minimises ``d`` (``num_k`` times).

Prediction averages the two classifiers' probabilities. Lightning counts every optimiser step, so
``trainer.max_steps`` = iterations × (3 + num_k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from domadapt.losses.discrepancy import ClassifierDiscrepancyLoss
from domadapt.methods.base import DomainAdaptationModule


class MCD(DomainAdaptationModule):
    """Maximum classifier discrepancy with two heads on ``net.features``.

    Args:
        net: network returning features ``(N, D)`` (or ``(N, D, H, W)`` for segmentation).
        num_k: generator steps (C) per iteration.
        **kwargs: :class:`DomainAdaptationModule` arguments (``lr`` for G; heads at ``lr * head_lr_mult``).
    """

    def __init__(self, net: nn.Module, num_k: int = 4, **kwargs) -> None:
        if num_k < 1:
            raise ValueError(f"MCD.num_k: expected >= 1, got {num_k}")
        super().__init__(net, **kwargs)
        self.automatic_optimization = False
        d, k = net.num_features, net.num_classes
        make = (lambda: nn.Conv2d(d, k, 1)) if net.task == "segmentation" else (lambda: nn.Linear(d, k))
        self.c1, self.c2 = make(), make()
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
        opt_c = self.build_optimizer([{"params": heads, "lr_mult": self.hparams.head_lr_mult, "name": "classifiers"}])
        return [self.scheduled(opt_g), self.scheduled(opt_c)]

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_c = self.optimizers()
        src, tgt = batch["source"], batch["target"]
        y = self.ground_truth(src)
        n = src["image"].shape[0]

        def source_ce(z1, z2):
            return F.cross_entropy(z1, y, ignore_index=255) + F.cross_entropy(z2, y, ignore_index=255)

        # A: everything on the source
        loss_a = source_ce(*self.heads(self.net_output(src["image"]).features))
        self.check_finite({"task": loss_a})
        opt_g.zero_grad(), opt_c.zero_grad()
        self.manual_backward(loss_a)
        opt_g.step(), opt_c.step()

        # B: classifiers maximise the target discrepancy, generator fixed
        with torch.no_grad():
            f = self.net_output(torch.cat([src["image"], tgt["image"]])).features
        z1, z2 = self.heads(f)
        disc_b = self.discrepancy((z1[:n], z2[:n]), (z1[n:], z2[n:]))
        loss_b = source_ce(z1[:n], z2[:n]) - disc_b
        self.check_finite({"classifier_step": loss_b})
        opt_c.zero_grad()
        self.manual_backward(loss_b)
        opt_c.step()

        # C: generator minimises the discrepancy, classifiers fixed
        for _ in range(self.hparams.num_k):
            f_t = self.net_output(tgt["image"]).features
            with _frozen(self.c1, self.c2):
                z1, z2 = self.heads(f_t)
            loss_c = self.discrepancy((z1, z2), (z1, z2))
            self.check_finite({"discrepancy": loss_c})
            opt_g.zero_grad()
            self.manual_backward(loss_c)
            opt_g.step()
        self.step_schedulers()
        self.log_terms({"loss": loss_a.detach() + loss_c.detach(), "loss_task": loss_a, "loss_adapt": loss_c,
                        "discrepancy_max_step": disc_b}, batch_size=n)


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
