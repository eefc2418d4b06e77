"""Domain discriminators: an MLP on feature vectors and a fully-convolutional one on output maps."""

from __future__ import annotations

from torch import Tensor, nn


class MLPDiscriminator(nn.Module):
    """Feature-level domain classifier ``in_features -> hidden -> hidden -> 1`` (DANN, CDAN).

    By default ReLU and dropout between layers and no BatchNorm (a BN discriminator failed to align
    DigitsNet's features within small training budgets). With ``batch_norm`` each hidden layer is
    ``Linear -> BatchNorm1d -> ReLU`` and there is no dropout, the discriminator of
    Transfer-Learning-Library's DANN / CDAN (``tllib/modules/domain_discriminator.py``); it normalises
    the joint source + target batch, which BatchNorm-free networks such as LeNet need.

    Args:
        in_features: width ``D`` of the input vectors.
        hidden: width of both hidden layers (1024 in DANN / CDAN).
        dropout: dropout probability after each hidden layer (unused with ``batch_norm``).
        batch_norm: BatchNorm1d after each hidden linear layer instead of dropout.

    Shape:
        ``(N, D)`` -> ``(N,)`` logits (positive = "source" in DANN's convention).
    """

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        layers: list[nn.Module] = []
        for width in (in_features, hidden):
            layers.append(nn.Linear(width, hidden))
            layers += [nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)] if batch_norm else [
                nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLPDiscriminator: input has {x.shape[-1]} features; expected in_features={self.in_features}"
            )
        return self.net(x).squeeze(1)  # (N,)


class FCDiscriminator(nn.Module):
    """Fully-convolutional output-space discriminator (AdaptSegNet, Tsai et al. 2018; used by BDL).

    Five 4x4 stride-2 convolutions (padding 1) ``C -> ndf -> 2ndf -> 4ndf -> 8ndf -> 1`` with
    LeakyReLU after all but the last; no normalisation. Each output logit judges a patch of the
    input map, so the output is at 1/32 of the input resolution (METHODS.md §1.2).

    Args:
        in_channels: channels ``C`` of the input map (number of classes).
        ndf: width of the first conv (64 in the paper).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        ``(N, C, H, W)`` with ``H, W >= 32`` -> ``(N, 1, H/32, W/32)`` logits.
    """

    min_size = 32  # five stride-2 convs with k=4, p=1 need at least 2**5 pixels per side

    def __init__(self, in_channels: int, ndf: int = 64, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.in_channels = in_channels
        widths = [in_channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(negative_slope, inplace=True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FCDiscriminator: input has shape {tuple(x.shape)}; expected (N, {self.in_channels}, H, W)"
            )
        if min(x.shape[2:]) < self.min_size:
            raise ValueError(
                f"FCDiscriminator: input is {x.shape[2]}x{x.shape[3]}; expected at least "
                f"{self.min_size}x{self.min_size} (five stride-2 convolutions)"
            )
        return self.net(x)


__all__ = ["FCDiscriminator", "MLPDiscriminator"]
