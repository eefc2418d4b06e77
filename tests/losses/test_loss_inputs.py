"""Bad input fails with a one-line ValueError naming what was expected."""

from __future__ import annotations

import re

import pytest
import torch

from domadapt.layers import FCDiscriminator, MLPDiscriminator, grl_coefficient
from domadapt.losses import (
    ClassifierDiscrepancyLoss,
    ConditionalAdversarialLoss,
    CORALLoss,
    DomainAdversarialLoss,
    EntropyLoss,
    MMDLoss,
    OutputSpaceAdversarialLoss,
)

r = torch.randn


def raises(message: str):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


def test_mismatched_feature_widths():
    with raises("CORALLoss: source has 64 features but target has 32; expected the same width D"):
        CORALLoss()(r(8, 64), r(8, 32))
    with raises("ClassifierDiscrepancyLoss: source has 5 classes but target has 4; expected the same width C"):
        ClassifierDiscrepancyLoss()((r(2, 5), r(2, 5)), (r(2, 4), r(2, 4)))


def test_segmentation_only_loss_given_vectors():
    with raises(
        "OutputSpaceAdversarialLoss: source has shape (8, 19); expected (N, C, H, W) "
        "(OutputSpaceAdversarialLoss supports segmentation only)"
    ):
        OutputSpaceAdversarialLoss(num_classes=19, ndf=4)(r(8, 19), r(8, 19))


def test_classification_only_loss_given_maps():
    loss = ConditionalAdversarialLoss(in_features=6, num_classes=3, hidden=4)
    with raises(
        "ConditionalAdversarialLoss: source has shape (2, 6, 4, 4); expected (N, D) "
        "(ConditionalAdversarialLoss supports classification only)"
    ):
        loss((r(2, 6, 4, 4), r(2, 3, 4, 4)), (r(2, 6, 4, 4), r(2, 3, 4, 4)))


def test_wrong_rank_and_dtype():
    with raises("MMDLoss: source has shape (8,); expected (N, D) or (N, D, H, W)"):
        MMDLoss()(r(8), r(8, 3))
    with raises("MMDLoss: target has dtype torch.int64; expected a floating-point tensor"):
        MMDLoss()(r(8, 3), torch.ones(8, 3, dtype=torch.long))
    with raises("MMDLoss: source is 2-D but target is 4-D; expected both (N, D) or both (N, D, H, W)"):
        MMDLoss()(r(8, 3), r(2, 3, 4, 4))
    with raises("EntropyLoss: target is a list; expected a torch.Tensor"):
        EntropyLoss()(None, [1.0, 2.0])


def test_sizes_that_must_match_the_constructor():
    with raises("DomainAdversarialLoss: inputs have 5 features; expected in_features=4"):
        DomainAdversarialLoss(in_features=4, hidden=4)(r(3, 5), r(3, 5))
    cdan = ConditionalAdversarialLoss(in_features=6, num_classes=3, hidden=4)
    with raises("ConditionalAdversarialLoss: inputs have 4 classes; expected num_classes=3"):
        cdan((r(2, 6), r(2, 4)), (r(2, 6), r(2, 4)))
    with raises("OutputSpaceAdversarialLoss: inputs have 4 classes; expected num_classes=3"):
        OutputSpaceAdversarialLoss(num_classes=3, ndf=4)(r(1, 4, 32, 32), r(1, 4, 32, 32))
    with raises("MLPDiscriminator: input has 3 features; expected in_features=7"):
        MLPDiscriminator(7, hidden=4)(r(2, 3))


def test_tuple_inputs():
    cdan = ConditionalAdversarialLoss(in_features=6, num_classes=3, hidden=4)
    with raises("ConditionalAdversarialLoss: source is a Tensor; expected a tuple (features, logits)"):
        cdan(r(2, 6), (r(2, 6), r(2, 3)))
    with raises(
        "ConditionalAdversarialLoss: target features has 2 rows but logits has 3; expected the same batch size"
    ):
        cdan((r(2, 6), r(2, 3)), (r(2, 6), r(3, 3)))
    with raises(
        "ClassifierDiscrepancyLoss: target logits_c1 has shape (2, 3) but logits_c2 has (2, 4); expected the same shape"
    ):
        ClassifierDiscrepancyLoss()((r(2, 3), r(2, 3)), (r(2, 3), r(2, 4)))


def test_too_few_samples_and_too_small_maps():
    with raises("CORALLoss: target has 1 sample; expected at least 2 to estimate a covariance"):
        CORALLoss()(r(4, 3), r(1, 3))
    with raises("MMDLoss: got 4 source and 1 target samples; expected at least 2 of each"):
        MMDLoss()(r(4, 3), r(1, 3))
    with raises("FCDiscriminator: input is 16x40; expected at least 32x32 (five stride-2 convolutions)"):
        FCDiscriminator(3, ndf=4)(r(1, 3, 16, 40))


def test_bad_options():
    with raises("MMDLoss: estimator='cubic'; expected 'quadratic' or 'linear'"):
        MMDLoss(estimator="cubic")
    with raises("grl_coefficient: unknown schedule 'exp'; expected 'dann', 'constant' or 'linear'"):
        grl_coefficient(0.5, schedule="exp")
