"""DACS's pieces against their formulas: strong augmentation, mixing masks, the mixed loss, the confidence weight.

(Training, checkpoints, precision, channels_last, kill-resume and export of DACS run in the shared method tests.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domadapt.layers.masking import block_masks, mask_images
from domadapt.layers.mixing import class_mix_masks, cut_mix_masks, mix, source_share
from domadapt.layers.strong_augment import StrongAugment, blur_kernel_side, gaussian_blur, rotate_hue
from domadapt.methods import DACS
from tests.conftest import tiny_net

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def normalised(images01: torch.Tensor) -> torch.Tensor:
    return (images01 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_strong_augment_that_does_nothing_returns_the_input():
    x = normalised(torch.rand(4, 3, 8, 8))
    off = StrongAugment(jitter_p=0.0, blur_p=0.0)
    torch.testing.assert_close(off(x, MEAN, STD), x, atol=1e-6, rtol=0)


def test_colour_jitter_matches_its_formula_with_the_same_draws():
    torch.manual_seed(3)
    x01 = torch.rand(5, 3, 6, 7)
    aug = StrongAugment(jitter=0.3, hue=0.0, jitter_p=1.0, blur_p=0.0)
    torch.manual_seed(11)
    got = aug(normalised(x01), MEAN, STD) * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    torch.manual_seed(11)  # the same draws, in the documented order: chosen, brightness, contrast, saturation
    torch.rand(5, 1, 1, 1)
    b, c, a = (torch.rand(5, 1, 1, 1).numpy() * 0.6 + 0.7 for _ in range(3))
    y = x01.numpy().astype(np.float64)
    grey = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    y = np.clip(y * b, 0, 1)
    mu = (y * grey).sum(1, keepdims=True).mean((2, 3), keepdims=True)
    y = np.clip((y - mu) * c + mu, 0, 1)
    g = (y * grey).sum(1, keepdims=True)
    y = np.clip((y - g) * a + g, 0, 1)
    np.testing.assert_allclose(got.numpy(), y, atol=2e-6)


def test_hue_rotation_keeps_luma_and_a_full_turn_is_the_identity():
    x = torch.rand(3, 3, 5, 5)
    quarter = torch.full((3, 1, 1, 1), 0.25)
    turned = rotate_hue(x, quarter)
    grey = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((turned * grey).sum(1), (x * grey).sum(1), atol=1e-5, rtol=0)
    assert not torch.allclose(turned, x, atol=1e-3)
    torch.testing.assert_close(rotate_hue(rotate_hue(turned, quarter), 2 * quarter), x, atol=1e-5, rtol=0)


def test_inversion_and_channel_shuffle():
    x01 = torch.rand(6, 3, 4, 4)
    inv = StrongAugment(jitter_p=0.0, blur_p=0.0, invert_p=1.0)(normalised(x01), MEAN, STD)
    torch.testing.assert_close(inv, normalised(1 - x01), atol=1e-5, rtol=0)
    shuffled = StrongAugment(jitter_p=0.0, blur_p=0.0, channel_shuffle_p=1.0)(x01, (0.0,) * 3, (1.0,) * 3)
    for a, b in zip(shuffled, x01):  # each image: its own channels, in some order
        assert sorted(a.flatten(1).tolist()) == sorted(b.flatten(1).tolist())


@pytest.mark.parametrize("decisions", ["image", "batch"])
def test_apply_decisions_per_image_or_once_per_batch(decisions):
    """Released DACS / DAFormer / MIC: one U(0, 1) per iteration decides for every image; strengths stay per image."""
    x01 = torch.rand(64, 3, 4, 4)
    mixed = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out = StrongAugment(jitter_p=0.0, blur_p=0.0, invert_p=0.5, decisions=decisions)(x01, (0.0,) * 3, (1.0,) * 3)
        inverted = torch.isclose(out, 1 - x01, atol=1e-6).flatten(1).all(1)
        assert inverted.any() or torch.equal(out, x01)
        mixed += bool(inverted.any() and not inverted.all())
    assert mixed == (20 if decisions == "image" else 0)
    torch.manual_seed(0)
    jittered = StrongAugment(jitter=0.5, hue=0.0, jitter_p=1.0, blur_p=0.0, decisions=decisions)(x01, (0.0,) * 3,
                                                                                                 (1.0,) * 3)
    ratios = (jittered.flatten(1).mean(1) / x01.flatten(1).mean(1))
    assert ratios.std() > 0.05  # each image its own brightness / contrast / saturation
    with pytest.raises(ValueError, match="StrongAugment.decisions"):
        StrongAugment(decisions="pixel")


def test_gaussian_blur_matches_a_numpy_separable_convolution():
    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    sigma = torch.tensor([0.5, 1.1], dtype=torch.float64)
    got = gaussian_blur(x, sigma, 5).numpy()
    for i, s in enumerate(sigma.tolist()):
        r = np.arange(5) - 2.0
        k = np.exp(-r ** 2 / (2 * s * s))
        k /= k.sum()
        pad = np.pad(x[i].numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")
        rows = sum(k[j] * pad[:, j:j + 9, :] for j in range(5))
        ref = sum(k[j] * rows[:, :, j:j + 11] for j in range(5))
        np.testing.assert_allclose(got[i], ref, atol=1e-12)
    assert [blur_kernel_side(s, s) for s in (32, 40, 512, 1024)] == [3, 3, 51, 103]


def test_strong_augment_keeps_channels_last_and_refuses_bad_settings():
    x = torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    assert StrongAugment()(x, MEAN, STD).is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="blur_p"):
        StrongAugment(blur_p=1.5)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        StrongAugment()(torch.rand(2, 1, 8, 8), MEAN, STD)


def test_class_mix_takes_half_of_the_classes_of_each_label_map():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (6, 10, 12))
    labels[0, :2] = 255  # ignored pixels count as a class, as in the released code
    masks = class_mix_masks(labels)
    assert masks.shape == (6, 1, 10, 12) and set(masks.unique().tolist()) <= {0.0, 1.0}
    for y, m in zip(labels, masks[:, 0].bool()):
        inside, outside = set(y[m].tolist()), set(y[~m].tolist())
        n = len(set(y.flatten().tolist()))
        assert not inside & outside and len(inside) == (n + n % 2) // 2


def test_cut_mix_masks_are_one_box_each_with_uniform_area():
    torch.manual_seed(0)
    masks = cut_mix_masks(2000, 16, 20)[:, 0]
    rows, cols = masks.amax(2), masks.amax(1)
    torch.testing.assert_close(masks, rows[:, :, None] * cols[:, None, :])  # an axis-aligned rectangle
    share = source_share(masks[:, None])
    assert abs(share.mean().item() - 0.5) < 0.03 and share.min() >= 0 and share.max() <= 1


def test_mix_pastes_source_where_the_mask_is_one():
    m = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    a, b = torch.full((1, 3, 2, 2), 2.0), torch.full((1, 3, 2, 2), -1.0)
    assert mix(m, a, b)[0, 0].tolist() == [[2.0, -1.0], [-1.0, 2.0]]
    ya, yb = torch.full((1, 2, 2), 7), torch.full((1, 2, 2), 3)
    assert mix(m, ya, yb)[0].tolist() == [[7, 3], [3, 7]] and mix(m, ya, yb).dtype == torch.int64


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_mixed_loss_matches_its_formula(task):
    torch.manual_seed(1)
    model = DACS(tiny_net(task))
    k = model.net.num_classes
    shape = (4,) if task == "classification" else (4, 3, 5)
    logits = torch.randn(*shape[:1], k, *shape[1:], dtype=torch.float64)
    ys, yt = torch.randint(0, k, shape), torch.randint(0, k, shape)
    ys.view(-1)[:3] = 255
    q = torch.rand(shape, dtype=torch.float64)
    mask = (torch.rand(4, 1, 3, 5) > 0.5).double()
    got = model.mixed_loss(logits, mask, ys, yt, q)
    z = logits.movedim(1, -1).reshape(-1, k).numpy()
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    s, t = ys.reshape(-1).numpy(), yt.reshape(-1).numpy()
    ce_s = np.where(s == 255, 0.0, -logp[np.arange(len(s)), np.minimum(s, k - 1)])
    ce_t = -logp[np.arange(len(t)), t]
    share = mask[:, 0].reshape(-1).numpy() if task == "segmentation" else mask.flatten(1).mean(1).numpy()
    ref = (share * ce_s + (1 - share) * q.reshape(-1).numpy() * ce_t).mean()
    assert got.item() == pytest.approx(ref, rel=1e-12)


def test_confidence_weights():
    c = torch.tensor([0.99, 0.5, 0.97, 0.2])
    quality = DACS(tiny_net("classification")).confidence_weight(c)  # DACS: share above 0.968, for every sample
    assert quality.tolist() == [0.5] * 4
    per_sample = DACS(tiny_net("classification"), weighting="threshold", threshold=0.9).confidence_weight(c)
    assert per_sample.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert DACS(tiny_net("classification"), weighting="none").confidence_weight(c).tolist() == [1.0] * 4


def test_a_segmentation_step_trains_and_the_teacher_follows_by_ema():
    torch.manual_seed(0)
    model = DACS(tiny_net("segmentation"), ema_decay=0.5, ema_warmup="none", input_mean=MEAN, input_std=STD)
    released = DACS(tiny_net("segmentation"), ema_decay=0.5)  # DACS's ramp: the first update copies the student
    assert (released.teacher.warmup, released.teacher.current_decay()) == ("average", 0.0)
    assert model.mix_mask == "class" and DACS(tiny_net("classification")).mix_mask == "cut"
    before = {k: v.clone() for k, v in model.teacher.module.state_dict().items()}
    opt = torch.optim.SGD(model.net.parameters(), lr=0.1)
    batch = {"source": {"image": torch.randn(2, 3, 32, 48), "mask": torch.randint(0, 4, (2, 32, 48))},
             "target": {"image": torch.randn(2, 3, 32, 48)}}
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    opt.step()
    model.teacher.update(model.net)
    for name, t in model.teacher.module.state_dict().items():
        if t.is_floating_point() and name in dict(model.net.named_parameters()):
            torch.testing.assert_close(t, 0.5 * before[name] + 0.5 * dict(model.net.named_parameters())[name].detach())


def test_block_masks_keep_whole_blocks_at_the_documented_rate():
    torch.manual_seed(0)
    keep = block_masks(400, 32, 48, block=8, ratio=0.7)
    assert keep.shape == (400, 1, 32, 48)
    cells = keep[:, 0].unflatten(1, (4, 8)).unflatten(3, (6, 8))  # (N, 4, 8, 6, 8): 4 x 6 blocks of 8 x 8
    assert torch.equal(cells.amax((2, 4)), cells.amin((2, 4)))  # each block all kept or all masked
    assert abs(keep.mean().item() - 0.3) < 0.02
    x = torch.randn(2, 3, 32, 48)
    assert torch.equal(mask_images(x, keep[:2]), x * keep[:2])
    with pytest.raises(ValueError, match="ratio"):
        block_masks(1, 8, 8, block=4, ratio=1.0)


def test_masked_consistency_term_matches_its_formula():
    torch.manual_seed(2)
    model = DACS(tiny_net("classification"), mic_weight=1.0, mic_block=8, mic_ratio=0.5, jitter_p=0.0, blur_p=0.0).eval()
    x = torch.randn(4, 3, 32, 32)
    labels, q = torch.randint(0, 4, (4,)), torch.rand(4)
    torch.manual_seed(5)
    got = model.masked_loss(x, labels, q, (0.0,) * 3, (1.0,) * 3)
    torch.manual_seed(5)  # the same draws: the augmentation's (none here: it only clamps to [0, 1]), then the mask's
    augmented = model.augment(x, (0.0,) * 3, (1.0,) * 3)
    keep = block_masks(4, 32, 32, 8, 0.5)
    assert 0.3 < keep.mean() < 0.7
    with torch.no_grad():
        ref = (q * F.cross_entropy(model.net(augmented * keep).logits, labels, reduction="none")).mean()
    torch.testing.assert_close(got, ref)


def test_an_alignment_loss_adds_its_term_and_trains_its_parameters_with_the_network():
    from domadapt.losses import DomainAdversarialLoss

    torch.manual_seed(0)
    net = tiny_net("classification")
    loss = DomainAdversarialLoss(net.num_features, hidden=8, batch_norm=True)
    model = DACS(net, alignment=loss, alignment_weight=0.5, input_mean=MEAN, input_std=STD)
    groups = {g["name"]: g for g in model.param_groups()}
    assert {id(p) for p in groups["alignment"]["params"]} == {id(p) for p in loss.parameters()}
    assert groups["alignment"]["lr_mult"] == model.hparams.head_lr_mult
    batch = {"source": {"image": torch.randn(8, 3, 32, 32), "label": torch.randint(0, 4, (8,))},
             "target": {"image": torch.randn(8, 3, 32, 32)}}
    terms = {}
    model.log_terms = lambda logged, batch_size: terms.update(logged)  # what the step logs, without a trainer
    total = model.training_step(batch, 0)
    assert set(terms) == {"loss", "loss_task", "loss_mix", "loss_align"}
    torch.testing.assert_close(total, terms["loss_task"] + terms["loss_mix"] + 0.5 * terms["loss_align"])
    total.backward()
    assert all(p.grad is not None for p in loss.parameters())


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="DACS.mix"):
        DACS(tiny_net("classification"), mix="class")
    with pytest.raises(ValueError, match="DACS.weighting"):
        DACS(tiny_net("classification"), weighting="soft")
    with pytest.raises(ValueError, match="DACS.mic"):
        DACS(tiny_net("classification"), mic_ratio=1.0)
    with pytest.raises(TypeError, match="DACS.alignment"):
        DACS(tiny_net("classification"), alignment=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="DACS.threshold"):
        DACS(tiny_net("classification"), threshold=1.5)
