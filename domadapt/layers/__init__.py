"""Small reusable modules: gradient reversal, domain discriminators, dynamic convolutions (DRT, DCD)."""

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

__all__ = [
    "CoeffSchedule",
    "DCDConv2d",
    "DynamicConv2d",
    "FCDiscriminator",
    "GradientReversal",
    "GradientReversalFunction",
    "MLPDiscriminator",
    "annealed_temperature",
    "grl_coefficient",
    "reverse_gradient",
]
