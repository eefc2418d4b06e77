"""Multi-level training (AdaptSegNet train_gta2cityscapes_multi.py, ADVENT MULTI_LEVEL): the auxiliary output gets
λ_seg 0.1 of the source cross-entropy and λ_aux 2e-4 of its own discriminator's adversarial term, every method that
does not train it refuses a multi-level network, and evaluation uses the main output."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from domadapt.methods import METHODS, AdvEnt, OutputSpaceAdversarial, SourceOnly
from domadapt.structures import NetOutput
from tests.conftest import tiny_datamodule


class TinyMultiLevel(nn.Module):
    """Two outputs as DeepLabV2(multi_level=True): main on the last features, auxiliary on the middle ones."""

    task, multi_level = "segmentation", True

    def __init__(self, num_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        self.body1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.body2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.main, self.aux = nn.Conv2d(width, num_classes, 1), nn.Conv2d(width, num_classes, 1)
        self.num_classes, self.num_features = num_classes, width

    def forward_levels(self, x: torch.Tensor) -> list[NetOutput]:
        mid = self.body1(x)
        features = self.body2(mid)
        return [NetOutput(self.main(features), features), NetOutput(self.aux(mid), mid)]

    def forward(self, x: torch.Tensor) -> NetOutput:
        return self.forward_levels(x)[0]


def _fit(module: pl.LightningModule, tmp_path) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", limit_val_batches=0)
    trainer.fit(module, tiny_datamodule("segmentation", n=8, batch_size=4))
    return trainer


@pytest.mark.parametrize("method", [OutputSpaceAdversarial, AdvEnt])
def test_the_generator_loss_is_the_released_multi_level_sum(method, tmp_path):
    torch.manual_seed(0)
    net = TinyMultiLevel()
    module = method(net=net, lr=0.01, adaptation_weight=1e-3, aux_weight=0.1, aux_adaptation_weight=2e-4)
    aux_before = net.aux.weight.detach().clone()
    d_aux_before = [p.detach().clone() for p in module.aux_loss.parameters()]
    m = _fit(module, tmp_path).callback_metrics
    expected = m["train/loss_task_step"] + 0.1 * m["train/loss_task_aux_step"] + 1e-3 * m["train/loss_adapt_step"] \
        + 2e-4 * m["train/loss_adapt_aux_step"]
    torch.testing.assert_close(m["train/loss_step"], expected)
    assert not torch.equal(net.aux.weight, aux_before)  # the auxiliary head trains
    assert any(not torch.equal(p, q) for p, q in zip(module.aux_loss.parameters(), d_aux_before))  # so does D_aux
    assert type(module.aux_loss) is type(module.loss) and module.aux_loss is not module.loss
    d_main = next(module.loss.parameters())
    assert not torch.equal(d_main, next(module.aux_loss.parameters()))  # two independently initialised discriminators


def test_evaluation_uses_the_main_output():
    net = TinyMultiLevel().eval()
    module = OutputSpaceAdversarial(net=net, lr=0.01)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(module.predict_probabilities(x, (16, 16)), net.forward_levels(x)[0].logits.softmax(1))


@pytest.mark.parametrize("name", [n for n, cls in METHODS.items() if not cls.supports_multi_level])
def test_methods_that_would_not_train_the_auxiliary_output_refuse_a_multi_level_network(name):
    """No method trains a multi-level network with a silent, gradient-less auxiliary head: the segmentation methods
    say why; the classification ones refuse a segmentation network anyway."""
    with pytest.raises((TypeError, ValueError)) as e:
        METHODS[name](net=TinyMultiLevel(), lr=0.01)
    if "segmentation" not in str(e.value) and "loss" not in str(e.value):
        assert "multi_level=True" in str(e.value) and "would not train" in str(e.value)
    assert name != "SourceOnly" or "would not train" in str(e.value)


def test_deeplabv2_multi_level_trains_both_aspp_heads(tmp_path):
    from domadapt.models import DeepLabV2

    torch.manual_seed(0)
    net = DeepLabV2("resnet50", num_classes=4, multi_level=True)
    heads = {name: [p.detach().clone() for p in getattr(net, name).parameters()] for name in ("layer5", "layer6")}
    _fit(OutputSpaceAdversarial(net=net, lr=0.01), tmp_path)
    for name, before in heads.items():
        assert any(not torch.equal(p, q) for p, q in zip(getattr(net, name).parameters(), before)), name
    assert SourceOnly.supports_multi_level is False
