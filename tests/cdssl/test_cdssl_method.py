"""CDSSL: the soft pseudo-label targets from the sharpened teacher, training on mixed batches with an EMA teacher,
checkpoint round trip of the teacher, and the teacher as labeller of the next round."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from domadapt.data.self_training import SelfTrainingDataModule
from domadapt.data.style_transfer import HistogramTransfer
from domadapt.data.transforms import Augment
from domadapt.methods import METHODS
from domadapt.methods.cdssl import CDSSL
from domadapt.pseudo.dataset import PseudoLabelled
from domadapt.pseudo.generate import generate_pseudo_labels
from domadapt.pseudo.thresholds import GlobalThreshold
from tests.cdssl.cdssl_toys import write_pseudo_set
from tests.conftest import TinySegNet, random_domain, tiny_net


@pytest.mark.parametrize("mode,t", [("soft", 1.0), ("sharpened", 0.5)])
def test_soft_targets_come_from_the_sharpened_teacher(mode, t):
    model = CDSSL(tiny_net("classification"), pseudo_targets=mode, temperature=0.5, ema_decay=0.9)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))  # the teacher differs from the student
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([1, 255, 0, 2])
    logits = model.net(x).logits
    q = model.teacher(x).logits.softmax(1) ** (1 / t)
    q = q / q.sum(1, keepdim=True)
    expected = -(q * logits.log_softmax(1)).sum(1)[labels != 255].mean()
    torch.testing.assert_close(model.pseudo_label_loss(logits, x, labels), expected)


def mixed_module(tmp_path, **kw) -> SelfTrainingDataModule:
    src = random_domain("classification", 32, 0, size=(32, 32))
    raw_target = random_domain("classification", 32, 1, shift=30, size=(32, 32))
    labels = np.where(np.arange(32) % 5 == 0, 255, raw_target.targets)
    target = PseudoLabelled(raw_target, write_pseudo_set(raw_target, labels, tmp_path / "pl"))
    return SelfTrainingDataModule(src, target, target_val=random_domain("classification", 16, 2, shift=30),
                                  train_transform=Augment(), eval_transform=Augment(train=False), batch_size=6,
                                  target_batch_size=2, target_ratio=0.5, **kw)


def trainer(tmp_path, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, limit_val_batches=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                      num_sanity_val_steps=0, default_root_dir=tmp_path)


def test_trains_on_mixed_batches_updates_the_teacher_and_checkpoints_it(tmp_path):
    model = CDSSL(tiny_net("classification"), pseudo_targets="sharpened", ema_decay=0.5, lr=0.05)
    dm = mixed_module(tmp_path, style_transfer=HistogramTransfer())
    t = trainer(tmp_path, 5)
    t.fit(model, dm)
    m = t.callback_metrics
    assert math.isfinite(float(m["train/loss_pseudo_step"])) and math.isfinite(float(m["train/loss_task_step"]))
    assert float(m["train/target_share"]) == pytest.approx(0.5, abs=0.2)
    assert int(model.teacher.num_updates) == 5
    student, teacher = model.net.state_dict(), model.teacher.module.state_dict()
    assert not torch.equal(student["head.weight"] if "head.weight" in student else next(iter(student.values())),
                           teacher["head.weight"] if "head.weight" in teacher else next(iter(teacher.values())))
    path = tmp_path / "m.ckpt"
    t.save_checkpoint(path)
    assert any(k.startswith("teacher.module.") for k in torch.load(path, weights_only=False)["state_dict"])
    loaded = CDSSL.load_from_checkpoint(path, net=tiny_net("classification"))
    assert loaded.hparams.pseudo_targets == "sharpened" and int(loaded.teacher.num_updates) == 5
    for (k, a), b in zip(model.teacher.state_dict().items(), loaded.teacher.state_dict().values()):
        assert torch.equal(a, b), k


def test_teacher_labels_the_next_round_and_the_student_is_evaluated(tmp_path):
    model = CDSSL(tiny_net("classification"), ema_decay=0.9).eval()
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.mul_(-1.0)  # a teacher that disagrees with the student
    target = random_domain("classification", 24, 1, shift=30, size=(32, 32))
    x = torch.from_numpy(target.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        teacher_pred, student_pred = model.teacher(x).logits.argmax(1), model.net(x).logits.argmax(1)
        assert torch.equal(model.predict_probabilities(x).argmax(1), student_pred)
        assert torch.equal(model.pseudo_label_probabilities(x).argmax(1), teacher_pred)
    assert not torch.equal(teacher_pred, student_pred)
    generate_pseudo_labels(model, target, tmp_path / "pl", GlobalThreshold(0.0), progress=False, verbose=False)
    labels = PseudoLabelled(target, tmp_path / "pl").setup().labels
    assert np.array_equal(labels, teacher_pred.numpy())
    student_labeller = CDSSL(tiny_net("classification"), ema_decay=0.9, label_with="student").eval()
    assert torch.equal(student_labeller.pseudo_label_probabilities(x), student_labeller.predict_probabilities(x))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_source_only_or_target_only_batches(tmp_path):
    model = CDSSL(TinySegNet())
    src = {"image": torch.randn(2, 3, 8, 8), "mask": torch.randint(0, 4, (2, 8, 8))}
    tgt = {"image": torch.randn(3, 3, 8, 8), "mask": torch.full((3, 8, 8), 255)}
    assert model.training_step({"source": src}, 0).requires_grad
    only_t = model.training_step({"target": tgt}, 0)  # nothing kept: 0, with a graph, not NaN
    assert only_t.item() == 0.0 and only_t.requires_grad
    unlabelled = model.training_step({"source": src, "target": {"image": tgt["image"]}}, 0)
    torch.testing.assert_close(unlabelled, model.task_loss(model.net(src["image"]).logits, src["mask"]))
    with pytest.raises(ValueError, match="neither source samples nor pseudo-labelled target samples"):
        model.training_step({"target": {"image": tgt["image"]}}, 0)


def test_registered_and_bad_arguments():
    assert METHODS["CDSSL"] is CDSSL
    with pytest.raises(ValueError, match="CDSSL.temperature: expected T > 0, got 0"):
        CDSSL(tiny_net("classification"), temperature=0)
    with pytest.raises(ValueError, match="CDSSL.pseudo_targets: expected 'hard', 'soft' or 'sharpened'"):
        CDSSL(tiny_net("classification"), pseudo_targets="fuzzy")


def test_loads_weights_of_a_model_without_teacher_and_vice_versa():
    from domadapt.methods import SourceOnly

    source_only = SourceOnly(tiny_net("classification"))
    with torch.no_grad():
        for p in source_only.parameters():
            p.add_(1.0)
    model = CDSSL(tiny_net("classification"), ema_decay=0.9)
    model.load_state_dict(source_only.state_dict())
    for (k, a), b, c in zip(source_only.net.state_dict().items(), model.net.state_dict().values(),
                            model.teacher.module.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c), k  # the teacher starts from the loaded student
    plain = CDSSL(tiny_net("classification"))
    plain.load_state_dict(model.state_dict())  # teacher weights dropped
    with pytest.raises(RuntimeError, match="CDSSL.load_state_dict: missing keys"):
        model.load_state_dict({"net.head.weight": torch.zeros(4, 16)})  # a checkpoint of another network
