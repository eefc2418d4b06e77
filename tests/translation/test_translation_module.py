"""The Translation LightningModule: training steps and logs, schedule, resume, errors, perceptual weights, recipe.

The shared method tests (:mod:`tests.method_cases`) also run it: training and checkpoint round trip, schedule horizon,
kill-resume, mixed precision, channels_last and export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader

from domadapt.methods.translation import Translation, constant_then_linear
from tests.conftest import TinySegNet, tiny_datamodule
from tests.method_cases import TINY_TRANSLATION as TINY

ROOT = Path(__file__).resolve().parents[2]


def trainer(tmp_path, max_steps, **kw) -> pl.Trainer:
    args = dict(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                limit_val_batches=0, default_root_dir=tmp_path)
    return pl.Trainer(**{**args, **kw})


class PairedBatches(torch.utils.data.Dataset):
    """Fixed ``{"source": {"image"}, "target": {"image"}}`` samples in [-1, 1] (deterministic order)."""

    def __init__(self, n: int = 3, hw=(16, 16), value: float | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.a = torch.rand(n, 3, *hw, generator=g) * 2 - 1
        self.b = torch.rand(n, 3, *hw, generator=g) * 1.6 - 0.6
        if value is not None:
            self.a[:] = value

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i):
        return {"source": {"image": self.a[i]}, "target": {"image": self.b[i]}}


class Recorder(pl.Callback):
    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.flush_train_log(batch_idx)  # callbacks run before the module's own flush: log this batch's now
        self.logs.append({k: float(v) for k, v in trainer.logged_metrics.items() if k.endswith("_step")})


def test_training_steps_log_every_term_finite_and_write_grids(tmp_path):
    torch.manual_seed(0)
    seg = TinySegNet()
    # Images in [0, 1] (no normalisation): the module converts them with input_mean / input_std.
    module = Translation(**TINY, pool_size=3, perceptual_net=seg, perceptual_mean=(0.5,) * 3, perceptual_std=(0.5,) * 3,
                         input_mean=(0.0,) * 3, input_std=(1.0,) * 3)
    g_before = [p.detach().clone() for p in module.g_a.parameters()]
    dm = tiny_datamodule("segmentation", n=16, batch_size=4)  # 32x48 images, 4 iterations per epoch
    dm.train_transform = dm.eval_transform = None  # the datasets' default: scale to [0, 1]
    t = trainer(tmp_path, max_steps=10, logger=CSVLogger(tmp_path, name="logs"), limit_val_batches=1,
                check_val_every_n_epoch=1)
    t.fit(module, dm)
    logged = t.logged_metrics
    for key in ("loss_G", "loss_D", "loss_D_A", "loss_D_B", "loss_G_gan", "loss_cycle", "loss_idt", "loss_per",
                "loss_per_recon"):
        assert math.isfinite(float(logged[f"train/{key}_step"])), key
    assert {"val/source/cycle_l1", "val/target/cycle_l1"} <= set(logged)
    assert not seg.training and all(p.grad is None for p in seg.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, module.g_a.parameters()))
    grids = sorted((Path(t.log_dir) / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["source_iter0000004.png", "target_iter0000004.png"]
    assert np.asarray(Image.open(grids[0])).shape == (4 * 32, 3 * 48, 3)  # rows: images; input | translated | rec


def test_schedule_is_constant_then_linear_to_zero():
    assert [constant_then_linear(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert constant_then_linear(0.9, decay_start=0.8) == pytest.approx(0.5)
    assert constant_then_linear(0.9, decay_start=1.0) == 1.0


def test_learning_rate_follows_progress(tmp_path):
    module = Translation(**TINY, pool_size=0, schedule_horizon=4)
    t = trainer(tmp_path, max_steps=6)  # 3 iterations -> lr factor (1 - 3/4) / 0.5 = 0.5
    t.fit(module, DataLoader(PairedBatches(4), batch_size=1))
    assert [o.param_groups[0]["lr"] for o in t.optimizers] == pytest.approx([1e-4, 1e-4])


def test_resume_from_checkpoint_gives_identical_next_steps(tmp_path):
    # One sample per epoch: Lightning does not fast-forward a plain DataLoader on resume, so the data
    # stream is made independent of where the epoch boundary falls; every model-side state must match.
    data = DataLoader(PairedBatches(1), batch_size=1)
    kw = dict(**TINY, pool_size=2, schedule_horizon=6)  # the pool fills at iteration 2 and then swaps

    torch.manual_seed(0)
    straight = Recorder()
    trainer(tmp_path / "a", max_steps=12, callbacks=[straight]).fit(Translation(**kw), data)

    torch.manual_seed(0)
    first = trainer(tmp_path / "b", max_steps=6)
    first.fit(Translation(**kw), data)
    first.save_checkpoint(tmp_path / "mid.ckpt")
    torch.manual_seed(1234)  # different init and global RNG: everything must come from the checkpoint
    resumed = Recorder()
    trainer(tmp_path / "b", max_steps=12, callbacks=[resumed]).fit(Translation(**kw), data,
                                                                   ckpt_path=tmp_path / "mid.ckpt")
    assert len(straight.logs) == 6 and len(resumed.logs) == 3
    for expected, got in zip(straight.logs[3:], resumed.logs):
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k] == pytest.approx(expected[k], rel=1e-6, abs=1e-7), k
    assert straight.logs[3]["train/loss_D_step"] != straight.logs[4]["train/loss_D_step"]


def test_non_finite_loss_names_iteration_and_term(tmp_path):
    module = Translation(**TINY, pool_size=0)
    with pytest.raises(FloatingPointError, match=r"iteration 0 .*term `gan_a`"):
        trainer(tmp_path, max_steps=2).fit(module, DataLoader(PairedBatches(2, value=float("nan")), batch_size=1))


def test_perceptual_weights_from_a_method_checkpoint(tmp_path):
    torch.manual_seed(0)
    trained = TinySegNet()
    state = {f"net.{k}": v for k, v in trained.state_dict().items()}
    state["loss.discriminator.0.weight"] = torch.zeros(2, 2)  # another part of the method, dropped
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "method.ckpt")
    module = Translation(**TINY, perceptual_net=TinySegNet(), perceptual_weights=str(tmp_path / "method.ckpt"))
    for k, v in trained.state_dict().items():
        assert torch.equal(module.perceptual.net.state_dict()[k], v), k
    assert all(not p.requires_grad for p in module.perceptual.parameters())
    torch.save(TinySegNet(num_classes=6).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: shape mismatch for 'head\.weight'"):
        Translation(**TINY, perceptual_net=TinySegNet(), perceptual_weights=str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="without a perceptual_net"):
        Translation(**TINY, perceptual_weights=str(tmp_path / "method.ckpt"))


def test_perceptual_aspp_branches_keeps_the_first_branches():
    from domadapt.models import DeepLabV2

    torch.manual_seed(0)
    net = DeepLabV2(backbone="resnet50", num_classes=3, upsample_logits=False)
    full = [c for c in net.classifier.conv2d_list]
    module = Translation(**TINY, perceptual_net=net, perceptual_aspp_branches=2)
    head = module.perceptual.net.classifier
    assert list(head.conv2d_list) == full[:2]
    f = torch.randn(1, 2048, 5, 5)
    assert torch.allclose(head(f), full[0](f) + full[1](f))
    with pytest.raises(ValueError, match="ASPP"):
        Translation(**TINY, perceptual_net=TinySegNet(), perceptual_aspp_branches=2)


def test_toy_recipe_builds_the_module():
    from domadapt.cli import run_lightning

    cli = run_lightning(["--config", str(ROOT / "recipes/bdl/toycity_translation.yaml")], run=False)
    assert isinstance(cli.model, Translation) and cli.model.perceptual is None
    assert cli.model.g_a.n_blocks == 3 and cli.trainer.max_steps == 600


def test_batches_are_converted_to_the_generator_range():
    x01 = torch.rand(2, 3, 4, 4)
    imagenet = Translation(**TINY, input_mean=(0.485, 0.456, 0.406), input_std=(0.229, 0.224, 0.225))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(imagenet.to_gan_range((x01 - mean) / std), x01 * 2 - 1, atol=1e-6)
    half = Translation(**TINY)  # default: batches already normalised with mean = std = 0.5, i.e. in [-1, 1]
    assert torch.allclose(half.to_gan_range(x01 * 2 - 1), x01 * 2 - 1)
