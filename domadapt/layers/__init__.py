"""Small reusable modules: gradient reversal and domain discriminators."""

from domadapt.layers.discriminators import FCDiscriminator, MLPDiscriminator
from domadapt.layers.grl import (
    CoeffSchedule,
    GradientReversal,
    GradientReversalFunction,
    grl_coefficient,
    reverse_gradient,
)

__all__ = [
    "CoeffSchedule",
    "FCDiscriminator",
    "GradientReversal",
    "GradientReversalFunction",
    "MLPDiscriminator",
    "grl_coefficient",
    "reverse_gradient",
]
