"""Source-only baseline: supervised training on the labelled source(s), no adaptation.

``L = CE(net(x_s), y_s)``. The target batch is still drawn (and ignored) so that every method sees the
same data stream and runs are comparable step for step.
"""

from __future__ import annotations

from domadapt.methods.base import DomainAdaptationModule


class SourceOnly(DomainAdaptationModule):
    """Train on source labels only (the lower bound every adaptation method must beat)."""

    def training_step(self, batch: dict, batch_idx: int):
        src = batch["source"]
        out = self.net(src["image"])
        loss = self.task_loss(out.logits, self.ground_truth(src))
        self.check_finite({"task": loss})
        self.log_terms({"loss": loss, "loss_task": loss}, batch_size=src["image"].shape[0])
        return loss
