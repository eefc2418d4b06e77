"""DAFormer's own pieces: the FD off-switch line, FD in training with a fake "ImageNet" encoder, the pseudo-label
margins and the teacher without dropout. (Training, checkpoints, precision, kill-resume and export of DAFormer run
in the shared method tests, where FD is off.)"""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from domadapt.methods import DAFormer
from domadapt.pseudo.ema import EMATeacher
from domadapt.structures import NetOutput
from tests.conftest import TinySegNet, tiny_datamodule, tiny_net
from tests.losses.test_feature_distance import FakeImageNetNet


def fit(module: pl.LightningModule, tmp_path, iterations: int = 2) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=iterations, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(module, tiny_datamodule("segmentation"))
    return trainer


def test_fd_is_off_with_one_line_at_start_without_imagenet_weights(tmp_path, caplog):
    module = DAFormer(tiny_net("segmentation"), psweight_ignore_top=0, psweight_ignore_bottom=0)
    assert module.feature_distance is None
    with caplog.at_level(logging.INFO):
        fit(module, tmp_path, iterations=1)
    lines = [r.getMessage() for r in caplog.records if "feature distance" in r.getMessage()]
    assert lines == ["DAFormer: ImageNet feature distance off: TinySegNet has no encoder_features(x)"]


def test_fd_off_names_the_missing_imagenet_weights():
    class NoImageNet(FakeImageNetNet):
        imagenet_encoder = False

    module = DAFormer(NoImageNet())
    assert module.feature_distance is None and "not built with ImageNet encoder weights" in module.fd_status
    assert DAFormer(FakeImageNetNet(), fd_weight=0).fd_status.endswith("off (fd_weight: 0)")


def test_fd_on_adds_its_term_and_trains(tmp_path, caplog):
    torch.manual_seed(0)
    module = DAFormer(FakeImageNetNet(), fd_classes=(1, 2), psweight_ignore_top=0, psweight_ignore_bottom=0)
    assert module.feature_distance is not None and "feature distance on" in module.fd_status
    seen = []
    original = module.feature_distance.forward
    module.feature_distance.forward = lambda *a: seen.append(original(*a)) or seen[-1]
    with caplog.at_level(logging.INFO):
        fit(module, tmp_path, iterations=2)
    assert len(seen) == 2 and all(torch.isfinite(v) and float(v.detach()) > 0 for v in seen[1:])
    assert any("feature distance on" in r.getMessage() for r in caplog.records)
    reference = module.feature_distance.reference
    assert not any(p.requires_grad for p in reference.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(module.net.parameters(), reference.parameters()))


@pytest.mark.parametrize("source_augment", [False, True])
def test_fd_reads_the_encoder_of_the_supervised_source_pass(source_augment):
    """As released: one student pass over the source images gives the source loss and FD's features (a second
    encoder pass only when the supervised pass saw augmented images)."""
    torch.manual_seed(0)
    module = DAFormer(FakeImageNetNet(), fd_classes=None, psweight_ignore_top=0, psweight_ignore_bottom=0,
                      source_augment=source_augment, input_mean=(0.5,) * 3, input_std=(0.25,) * 3)
    calls, features = [], []
    module.net.body.register_forward_hook(lambda *_: calls.append(1))
    original = module.feature_distance.forward
    module.feature_distance.forward = lambda f, *a: features.append(f) or original(f, *a)
    batch = {"source": {"image": torch.randn(2, 3, 16, 24), "mask": torch.randint(0, 4, (2, 16, 24))},
             "target": {"image": torch.randn(2, 3, 16, 24)}}
    loss = module.training_step(batch, 0)
    assert len(calls) == (3 if source_augment else 2)  # source (+ plain source for FD), mixed
    torch.testing.assert_close(features[0], module.net.encoder_features(batch["source"]["image"]))
    loss.backward()
    assert module.net.body[0].weight.grad.abs().sum() > 0


def test_pseudo_weight_margins_zero_the_top_and_bottom_rows():
    module = DAFormer(tiny_net("segmentation"), psweight_ignore_top=2, psweight_ignore_bottom=3, weighting="none")
    q = module.confidence_weight(torch.ones(2, 10, 4))
    assert q[:, :2].eq(0).all() and q[:, -3:].eq(0).all() and q[:, 2:7].eq(1).all()
    untouched = DAFormer(tiny_net("segmentation"), psweight_ignore_top=0, psweight_ignore_bottom=0, weighting="none")
    assert untouched.confidence_weight(torch.ones(2, 10, 4)).eq(1).all()


def test_defaults_are_daformers():
    hp = DAFormer(tiny_net("segmentation")).hparams
    assert (hp.ema_decay, hp.threshold, hp.weighting, hp.mix, hp.fd_weight, hp.fd_scale_min_ratio) == (
        0.999, 0.968, "quality", "class", 0.005, 0.75)
    assert (hp.jitter, hp.saturation, hp.hue, hp.jitter_p, hp.blur_p) == (0.2, 0.2, 0.2, 0.8, 0.5)
    assert (hp.psweight_ignore_top, hp.psweight_ignore_bottom, hp.teacher_mode) == (15, 120, "train_no_dropout")
    assert (hp.ema_warmup, hp.ema_warmup_start) == ("average", 2)


def test_classifier_is_refused():
    with pytest.raises(TypeError, match="expected a segmentation network"):
        DAFormer(tiny_net("classification"))


class DropNet(TinySegNet):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> NetOutput:
        f = self.drop(self.body(x))
        return NetOutput(self.head(f), f)


def test_teacher_without_dropout_uses_batch_statistics_and_no_dropout():
    torch.manual_seed(0)
    net = DropNet()
    teacher = EMATeacher(net, mode="train_no_dropout")
    teacher.eval()
    x = torch.randn(2, 3, 8, 8) * 3 + 1
    a, b = teacher(x).logits, teacher(x).logits
    torch.testing.assert_close(a, b)  # no dropout draw
    reference = DropNet()
    reference.load_state_dict(net.state_dict())
    reference.train()
    reference.drop.eval()
    with torch.no_grad():
        torch.testing.assert_close(a, reference(x).logits)  # BatchNorm on the batch's statistics
    assert not teacher.module.training and not teacher.module.drop.training  # flags restored
