"""CycleGAN networks for image translation (the translation stage of BDL, METHODS.md §1.2).

Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
ICCV 2017 (arXiv 1703.10593), in the configuration BDL trains (Li et al., CVPR 2019):

* :class:`ResnetGenerator` — Johnson et al.'s ResNet generator ``c7s1-64, d128, d256, R256 x n,
  u128, u64, c7s1-3``: InstanceNorm without affine parameters, reflection padding, no dropout,
  ``Tanh`` output in ``[-1, 1]``;
* :class:`PatchDiscriminator` — the "70x70 PatchGAN" (``n_layers=3``): one real/fake score per
  overlapping 70x70 input patch, InstanceNorm, LeakyReLU(0.2), raw scores (LSGAN takes an MSE);
* :class:`ImagePool` — Shrivastava et al.'s history of generated images that the discriminators
  are also trained on; its content is part of the module state, so resuming is exact.

All convolution weights are initialised ``N(0, 0.02)`` and biases 0 (:func:`init_normal`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from domadapt.checkpoint_file import read_checkpoint
from domadapt.fingerprint import file_sha256, state_sha256


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise every (transposed) convolution of ``module`` with ``N(0, std)`` weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _norm(channels: int) -> nn.InstanceNorm2d:
    # affine=False and no running statistics: every image is normalised with its own statistics,
    # in training and at inference alike (the CycleGAN "instance" norm).
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """``x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)`` with reflection padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator (``resnet_9blocks`` by default).

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        ngf: width of the first layer (64 in CycleGAN/BDL); the bottleneck has ``4 * ngf``.
        n_blocks: residual blocks at 1/4 resolution (9 for 256px and larger images).

    Shape:
        - Input: ``(N, in_channels, H, W)`` in ``[-1, 1]``. Sizes that are not multiples of 4 (which
          the two stride-2 stages would round) are reflection-padded at the bottom/right and the
          output cropped back.
        - Output: ``(N, out_channels, H, W)`` in ``[-1, 1]`` (``Tanh``).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        if ngf <= 0 or n_blocks < 0:
            raise ValueError(f"ResnetGenerator: expected ngf > 0 and n_blocks >= 0, got ngf={ngf}, n_blocks={n_blocks}")
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # d128, d256: stride-2 3x3 convolutions
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), _norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # u128, u64: fractionally-strided convolutions
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.in_channels, self.out_channels, self.ngf, self.n_blocks = in_channels, out_channels, ngf, n_blocks
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``; see the class docstring for shapes."""
        h, w = x.shape[-2:]
        ph, pw = -h % 4, -w % 4
        if ph or pw:
            return self.model(nn.functional.pad(x, (0, pw, 0, ph), mode="reflect"))[..., :h, :w]
        return self.model(x)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> ResnetGenerator:
        """A generator whose architecture is read off a state dict of this class, with the weights loaded.

        Raises:
            ValueError: the keys are not those of a :class:`ResnetGenerator`.
        """
        try:
            first, last = state["model.1.weight"], None
            blocks = {int(k.split(".")[1]) for k in state if k.startswith("model.") and ".block." in k}
            last_key = max((k for k in state if k.endswith(".weight")), key=lambda k: int(k.split(".")[1]))
            last = state[last_key]
        except (KeyError, ValueError, IndexError):
            raise ValueError(f"not a ResnetGenerator state dict (keys look like {list(state)[:3]})") from None
        gen = cls(in_channels=first.shape[1], out_channels=last.shape[0], ngf=first.shape[0], n_blocks=len(blocks))
        gen.load_state_dict(state)
        return gen


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: a real/fake score per overlapping input patch.

    ``C64 - C128 - C256 - C512 - 1`` for ``n_layers = 3``: 4x4 convolutions, the first ``n_layers``
    with stride 2, then one stride-1 layer and a stride-1 1-channel output; InstanceNorm on all but
    the first and last, LeakyReLU(0.2). Each score sees a :func:`patch_receptive_field` square
    (70 pixels for ``n_layers = 3``).

    Args:
        in_channels: input image channels.
        ndf: width of the first layer; widths double per layer, capped at ``8 * ndf``.
        n_layers: stride-2 layers (3 = the 70x70 PatchGAN).

    Shape:
        - Input: ``(N, in_channels, H, W)``.
        - Output: ``(N, 1, h, w)`` raw scores; ``h = H/2^n_layers - 2`` for ``H`` a multiple of
          ``2^n_layers`` (``30 x 30`` for ``256 x 256``).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if ndf <= 0 or n_layers < 1:
            raise ValueError(f"PatchDiscriminator: expected ndf > 0 and n_layers >= 1, got ndf={ndf}, n_layers={n_layers}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1  # the last hidden layer keeps the resolution
            new = ndf * min(2**n, 8)
            layers += [nn.Conv2d(width, new, 4, stride=stride, padding=1), _norm(new), nn.LeakyReLU(0.2, True)]
            width = new
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores; see the class docstring for shapes."""
        return self.model(x)


def patch_receptive_field(n_layers: int = 3) -> int:
    """Side in pixels of the input square one :class:`PatchDiscriminator` score depends on.

    Walking back from one output pixel, a ``k x k`` convolution of stride ``s`` turns a field of
    ``r`` pixels into ``(r - 1) * s + k``: two stride-1 4x4 layers give 7, then each of the
    ``n_layers`` stride-2 4x4 layers ``2r + 2`` (16, 34, 70, 142, ...).
    """
    r = 1
    for stride in [1, 1] + [2] * n_layers:  # output side first
        r = (r - 1) * stride + 4
    return r


class ImagePool(nn.Module):
    """History buffer of generated images (CycleGAN's ``ImagePool``).

    While fewer than ``size`` images are stored, every queried image is stored and returned as it
    is. Once full, each queried image is, with probability 1/2, swapped with a uniformly chosen
    stored one (the stored one is returned, the new one takes its place), else returned as it is.
    ``size = 0`` disables the pool.

    The random draws come from a private generator seeded from torch's global RNG on first use, so
    a run is deterministic given ``torch.manual_seed``; the stored images and that generator's state
    are saved with the module (``state_dict()`` key ``<prefix>_extra_state``), so a resumed run makes
    the same draws as an uninterrupted one.

    Args:
        size: maximum number of stored images (50 in CycleGAN/BDL).

    Shape:
        - Input: ``(N, C, H, W)`` images (stored detached).
        - Output: ``(N, C, H, W)`` on the input's device.
    """

    def __init__(self, size: int = 50) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"ImagePool.size: expected >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []  # each (C, H, W), detached
        self._rng: torch.Generator | None = None

    def _generator(self) -> torch.Generator:
        if self._rng is None:
            self._rng = torch.Generator()
            self._rng.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        return self._rng

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images to train the discriminator on; see the class docstring."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            rng = self._generator()
            if torch.rand((), generator=rng).item() > 0.5:
                i = int(torch.randint(0, self.size, (), generator=rng).item())
                out.append(self.images[i].to(image.device))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def __len__(self) -> int:
        return len(self.images)

    def get_extra_state(self) -> dict[str, Any]:
        rng = self._rng.get_state() if self._rng is not None else torch.empty(0, dtype=torch.uint8)
        return {"images": [im.cpu() for im in self.images], "rng_state": rng}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.images = [im.clone() for im in state["images"]]
        if state["rng_state"].numel():
            self._rng = torch.Generator()
            self._rng.set_state(state["rng_state"])
        else:
            self._rng = None

    def extra_repr(self) -> str:
        return f"size={self.size}"


class SemanticPerceptualLoss(nn.Module):
    """BDL's perceptual loss: distance between a frozen segmentation network's outputs (METHODS.md §1.3(c)).

    ``M`` is any domadapt segmentation network (``DeepLabV2``, ``SmpSegmenter``, ...), frozen: eval
    mode (kept by :meth:`train`), ``requires_grad=False``; gradients still flow *through* it to the
    images, i.e. to the generators. Two forms:

    * ``"code"`` (what produced BDL's released results): ``sem(u, v) = mean((IN(M(u)) - IN(M(v)))^2)``
      with ``IN`` = ``InstanceNorm2d(K, affine=False)`` applied to each logit map (every class map of
      every image normalised to zero mean, unit variance over its pixels);
    * ``"paper"`` (BDL eq. 2): ``mean(|M(u) - M(v)|)``, an L1 distance between the raw outputs.

    The code form compares the *spatial pattern* of each class score and ignores its per-image
    offset and scale; the paper form also penalises a global shift of the logits.

    Images come in the generators' range ``[-1, 1]`` and are converted to what ``M`` was trained on:
    ``((x + 1) / 2 - mean) / std`` (``mean``/``std`` in ``[0, 1]`` units, ImageNet by default).

    Args:
        net: the segmentation network; returns a ``NetOutput`` (its ``logits`` are used) or a tensor.
        form: ``"code"`` or ``"paper"`` (see above).
        mean: per-channel mean of ``M``'s input normalisation, ``[0, 1]`` units.
        std: per-channel std of ``M``'s input normalisation.

    Shape:
        - ``embed``: ``(N, 3, H, W)`` in ``[-1, 1]`` -> ``(N, K, h, w)`` (instance-normalised for ``"code"``).
        - ``forward``: two ``(N, 3, H, W)`` images -> scalar.
    """

    def __init__(self, net: nn.Module, form: str = "code", mean: tuple[float, ...] = (0.485, 0.456, 0.406),
                 std: tuple[float, ...] = (0.229, 0.224, 0.225)) -> None:
        super().__init__()
        if form not in ("code", "paper"):
            raise ValueError(f"SemanticPerceptualLoss.form: expected 'code' or 'paper', got {form!r}")
        self.net = net.requires_grad_(False).eval()
        self.form = form
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> SemanticPerceptualLoss:
        """The wrapper follows ``mode``; the frozen network always stays in eval mode."""
        super().train(mode)
        self.net.eval()
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``M``'s raw output for generator-range images ``x`` in ``[-1, 1]``."""
        out = self.net(((x + 1.0) * 0.5 - self.mean) / self.std)
        return out.logits if hasattr(out, "logits") else out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The map compared by :meth:`distance`: instance-normalised logits (``"code"``) or raw logits."""
        logits = self.logits(x)  # (N, K, h, w)
        return nn.functional.instance_norm(logits) if self.form == "code" else logits

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """MSE (``"code"``) or L1 (``"paper"``) between two embedded maps."""
        return nn.functional.mse_loss(a, b) if self.form == "code" else nn.functional.l1_loss(a, b)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``sem(u, v)``; see the class docstring."""
        return self.distance(self.embed(u), self.embed(v))


def load_network_checkpoint(net: nn.Module, path: str) -> nn.Module:
    """Load a trained network into ``net`` strictly (a perceptual net must be exactly the one trained).

    ``path`` is a local file: a plain state dict of ``net`` (``.pth``/``.pt``/``.safetensors``, read by
    :func:`~domadapt.models.weights.read_state_dict`; ``module.``/``model.`` wrapper prefixes
    stripped), or a Lightning checkpoint (``.ckpt``) of a domadapt method, whose network keys carry
    the ``net.`` prefix (other keys, e.g. a discriminator's ``loss.``, are dropped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the keys or shapes do not match ``net`` (one line, first offending keys named).
    """
    from domadapt.models.weights import read_state_dict

    state = read_state_dict(path)  # a .ckpt gives its `net.` keys, prefix removed
    if Path(path).suffix != ".ckpt":
        for prefix in ("module.", "model."):
            if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in net.state_dict()):
                state = {k[len(prefix):]: v for k, v in state.items()}
    own = net.state_dict()
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{path}: does not match {type(net).__name__}: {len(missing)} missing keys (first "
                         f"{missing[:3]}), {len(unexpected)} unexpected keys (first {unexpected[:3]})")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise ValueError(f"{path}: shape mismatch for {k!r}: file has {tuple(v.shape)}, "
                             f"{type(net).__name__} expects {tuple(own[k].shape)}")
    net.load_state_dict(state)
    return net


def load_generator(generator: str | os.PathLike | nn.Module,
                   direction: Literal["a2b", "b2a"] = "a2b") -> tuple[nn.Module, dict[str, Any]]:
    """The generator to translate with, and its identity for the manifest.

    Args:
        generator: an ``nn.Module``; a Lightning checkpoint of :class:`~domadapt.methods.translation.Translation`
            (``g_a.`` / ``g_b.`` keys); or a state dict of a :class:`ResnetGenerator`.
        direction: ``"a2b"`` = source -> target (``G_A``), ``"b2a"`` = ``G_B``.

    Returns:
        ``(module, {"checkpoint": path or None, "sha256": ..., "direction": ...})``.
    """
    if direction not in ("a2b", "b2a"):
        raise ValueError(f"load_generator.direction: expected 'a2b' or 'b2a', got {direction!r}")
    if isinstance(generator, nn.Module):
        return generator, {"checkpoint": None, "sha256": state_sha256(generator), "direction": direction,
                           "module": type(generator).__name__}
    path = Path(generator)
    obj = read_checkpoint(path, what="generator checkpoint")
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a Translation checkpoint or a ResnetGenerator state dict")
    prefix = "g_a." if direction == "a2b" else "g_b."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    module = ResnetGenerator.from_state_dict(state)
    return module, {"checkpoint": str(path), "sha256": file_sha256(path), "direction": direction,
                    "module": "ResnetGenerator"}
