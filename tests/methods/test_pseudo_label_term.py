"""OutputSpaceAdversarial's self-training term (BDL): the mean cross-entropy of the target logits over kept pseudo
labels, weighted by ``pseudo_label_weight``; a batch with no kept pixel adds no term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from domadapt.methods import OutputSpaceAdversarial
from tests.conftest import TinySegNet


class _Terms(Exception):
    """Carries the loss terms out of ``training_step`` (raised by ``check_finite``, before any optimiser step)."""


def _terms(module: OutputSpaceAdversarial, batch: dict) -> dict[str, torch.Tensor]:
    def stop(terms):
        raise _Terms(terms)

    module.check_finite = stop
    module.optimizers = lambda: (None, None)  # not reached: the terms are taken before the first step
    with pytest.raises(_Terms) as caught:
        module.training_step(batch, 0)
    return caught.value.args[0]


def _batch(mask: torch.Tensor) -> dict:
    g = torch.Generator().manual_seed(0)
    source = {"image": torch.randn(2, 3, 32, 40, generator=g), "mask": torch.randint(0, 4, (2, 32, 40), generator=g)}
    return {"source": source, "target": {"image": torch.randn(2, 3, 32, 40, generator=g), "mask": mask}}


def test_pseudo_term_is_ce_over_kept_pixels():
    torch.manual_seed(0)
    module = OutputSpaceAdversarial(TinySegNet(num_classes=4), pseudo_label_weight=0.5).eval()  # eval: fixed BN
    mask = torch.randint(0, 4, (2, 32, 40), generator=torch.Generator().manual_seed(1))
    mask[:, :12] = 255
    batch = _batch(mask)
    terms = _terms(module, batch)
    with torch.no_grad():
        logits_t = module.net(batch["target"]["image"]).logits  # (2, 4, 32, 40)
    torch.testing.assert_close(terms["pseudo"].detach(), F.cross_entropy(logits_t, mask, ignore_index=255))


def test_no_kept_pixel_adds_no_term():
    module = OutputSpaceAdversarial(TinySegNet(num_classes=4)).eval()
    assert "pseudo" not in _terms(module, _batch(torch.full((2, 32, 40), 255)))
    assert {"task", "adapt"} <= set(_terms(module, _batch(torch.full((2, 32, 40), 255))))
