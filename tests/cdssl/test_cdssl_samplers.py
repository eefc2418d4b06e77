"""Samplers: target ratio ρ, class-balanced target draws, disjoint distributed shares, missing classes,
rarest-class labels for segmentation, epochs, and bad arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from domadapt.data.samplers import MixedDomainSampler, PseudoLabelSampler, rarest_class, ratio_at

IMBALANCED = np.repeat([0, 1, 2, 3], [600, 120, 20, 5])  # 745 target samples, 120:1 between classes


def shuffled(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.5, 0.8, 1.0])
def test_target_share_equals_rho(rho):
    s = MixedDomainSampler(num_source=400, target_labels=shuffled(IMBALANCED), ratio=rho, num_samples=1000)
    idx = np.array(list(s))
    assert len(idx) == len(s) == 1000
    assert (idx >= 0).all() and (idx < 400 + len(IMBALANCED)).all()
    assert np.mean(idx >= 400) == pytest.approx(rho, abs=1e-3)
    if rho < 1:  # source without replacement: 600 draws from 400 samples repeat each at most twice
        assert np.bincount(idx[idx < 400], minlength=400).max() <= int(np.ceil((1 - rho) * 1000 / 400))


def test_drawn_target_classes_are_uniform_for_an_imbalanced_set():
    labels = shuffled(IMBALANCED)
    s = MixedDomainSampler(num_source=100, target_labels=labels, ratio=0.5, num_samples=4000)
    idx = np.array(list(s))
    drawn = labels[idx[idx >= 100] - 100]
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    np.testing.assert_allclose(freq, 0.25, atol=0.01)  # each class a quarter, from 80 % / 16 % / 3 % / 0.7 %
    assert np.bincount(idx[idx >= 100] - 100)[np.flatnonzero(labels == 0)].max() == 1  # frequent class: no repeats


def test_balance_zero_is_uniform_over_samples():
    labels = shuffled(IMBALANCED)
    s = PseudoLabelSampler(labels, balance=0.0)
    idx = np.array(list(s))
    assert sorted(idx.tolist()) == list(range(len(labels)))  # one epoch = a permutation of the set
    half = PseudoLabelSampler(labels, balance=0.5)
    expected = np.sqrt([600, 120, 20, 5]) / np.sqrt([600, 120, 20, 5]).sum()
    np.testing.assert_allclose(half.class_probs, expected)


def test_two_ranks_draw_disjoint_shares_of_the_one_process_draw():
    labels = shuffled(IMBALANCED)
    kw = dict(num_source=500, target_labels=labels, ratio=0.4, num_samples=900, seed=7)
    one = list(MixedDomainSampler(**kw, num_replicas=1, rank=0))
    r0, r1 = (list(MixedDomainSampler(**kw, num_replicas=2, rank=r)) for r in (0, 1))
    assert len(r0) == len(r1) == 450 and len(r0) + len(r1) == len(one)
    interleaved = [None] * 900
    interleaved[0::2], interleaved[1::2] = r0, r1
    assert interleaved == one  # the ranks split one draw by position
    # Without repeats (source only, one pass; or a balance-0 target epoch) the index *sets* are disjoint.
    s0, s1 = (set(MixedDomainSampler(500, labels, ratio=0.0, num_samples=500, num_replicas=2, rank=r))
              for r in (0, 1))
    assert not s0 & s1 and s0 | s1 == set(range(500))
    even = labels[:744]
    t0, t1 = (set(PseudoLabelSampler(even, balance=0.0, num_replicas=2, rank=r)) for r in (0, 1))
    assert not t0 & t1 and t0 | t1 == set(range(744))
    odd = PseudoLabelSampler(labels, balance=0.0, num_replicas=2, rank=1)  # 745 over 2 ranks: 373 each,
    assert len(odd) == 373 and odd.total_size == 746  # the 746th is one more draw, not a padded repeat of rank 0's


def test_rank_defaults_come_from_the_process_group(tmp_path):
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        s = PseudoLabelSampler([0, 1, 1])
        assert (s.num_replicas, s.rank) == (1, 0)
    finally:
        torch.distributed.destroy_process_group()
    with pytest.raises(ValueError, match="expected num_replicas >= 1 and 0 <= rank < num_replicas"):
        PseudoLabelSampler([0, 1], num_replicas=2, rank=2)


def test_epochs_change_the_draw_and_repeat_it():
    s = MixedDomainSampler(50, shuffled(IMBALANCED), ratio=0.5, num_samples=200)
    first, second_pass = list(s), list(s)  # a loader restarted within the epoch draws its next pass
    assert second_pass != first
    s.set_epoch(1)
    assert list(s) != first
    s.set_epoch(0)
    assert list(s) == first  # (seed, epoch, pass) fixes the draw
    again = MixedDomainSampler(50, shuffled(IMBALANCED), ratio=0.5, num_samples=200)
    again.resume(0, passes=1, skip=30)  # a resumed run continues the second pass after 30 draws
    assert list(again) == second_pass[30:]
    assert [i.seed for i in list(s)] != [i.seed for i in first]  # every draw carries its augmentation seed


def test_a_class_never_predicted_gets_weight_zero_and_is_reported():
    labels = shuffled(np.concatenate([IMBALANCED[IMBALANCED != 2], [255] * 30]))  # class 2 never kept
    s = PseudoLabelSampler(labels, num_classes=5, num_samples=3000)
    assert s.class_probs[2] == 0 and s.class_probs[4] == 0 and s.missing_classes == [2, 4]
    np.testing.assert_allclose(s.class_probs[[0, 1, 3]], 1 / 3)
    drawn = labels[np.array(list(s))]
    assert set(np.unique(drawn)) == {0, 1, 3}  # neither the missing classes nor unlabelled (255) samples
    assert s.describe()["missing_classes"] == [2, 4]


@pytest.mark.parametrize("field,value", [("ratio", -0.1), ("ratio", 1.2), ("ratio_end", 1.5)])
def test_rho_outside_unit_interval_is_a_one_line_error(field, value):
    kw = {"ratio": 0.5, field: value}
    with pytest.raises(ValueError, match=rf"MixedDomainSampler.{field}: expected ρ in \[0, 1\], got {value}"):
        MixedDomainSampler(10, [0, 1], **kw)


def test_rho_grows_over_rounds_and_shrinking_warns():
    assert [ratio_at(0.2, 0.6, 3, r) for r in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.6])
    s = MixedDomainSampler(100, [0, 1] * 50, ratio=0.2, ratio_end=0.6, rounds=3, round=1, num_samples=100)
    assert s.ratio_now == pytest.approx(0.4) and np.mean(np.array(list(s)) >= 100) == pytest.approx(0.4)
    with pytest.warns(UserWarning, match="shrinks the target share"):
        MixedDomainSampler(10, [0, 1], ratio=0.6, ratio_end=0.2, rounds=3)


def test_no_pseudo_label_at_all_draws_source_only_with_a_warning():
    with pytest.warns(UserWarning, match="no target sample has a pseudo label"):
        s = MixedDomainSampler(20, [255] * 8, ratio=0.5)
    assert s.ratio_now == 0.0 and max(s) < 20
    with pytest.raises(ValueError, match="every label is 255"):
        list(PseudoLabelSampler([255, 255], num_samples=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="0 source samples but ρ = 0.5 < 1"):
            MixedDomainSampler(0, [0, 1], ratio=0.5)
        assert min(MixedDomainSampler(0, [0, 1], ratio=1.0)) >= 0  # target only is fine


def test_rarest_class_of_each_image_against_a_loop():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 50, (30, 6)) * (rng.random((30, 6)) < 0.5)  # (N, K), many classes absent
    pixels[3] = 0  # an image with nothing kept
    got = rarest_class(pixels, min_pixels=5)
    freq = pixels.sum(0)
    for i in range(30):
        present = [c for c in range(6) if pixels[i, c] >= 5]
        assert got[i] == (min(present, key=lambda c: (freq[c], c)) if present else 255)
