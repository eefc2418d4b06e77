"""Small reusable modules: gradient reversal, domain discriminators, dynamic convolutions (DRT, DCD), cross-domain
mixing and strong augmentation (DACS)."""

from domadapt.layers.dcd_conv import DCDConv2d
from domadapt.layers.discriminators import FCDiscriminator, MLPDiscriminator
from domadapt.layers.dynamic_conv import DynamicConv2d, annealed_temperature
from domadapt.layers.grl import (
    CoeffSchedule,
    GradientReversal,
    GradientReversalFunction,
    grl_coefficient,
    reverse_gradient,
)
from domadapt.layers.mixing import class_mix_masks, cut_mix_masks, mix, source_share
from domadapt.layers.strong_augment import StrongAugment

__all__ = [
    "CoeffSchedule",
    "DCDConv2d",
    "DynamicConv2d",
    "FCDiscriminator",
    "GradientReversal",
    "GradientReversalFunction",
    "MLPDiscriminator",
    "StrongAugment",
    "annealed_temperature",
    "class_mix_masks",
    "cut_mix_masks",
    "grl_coefficient",
    "mix",
    "reverse_gradient",
    "source_share",
]
