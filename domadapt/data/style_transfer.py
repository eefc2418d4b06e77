"""Fine-grained source -> target style transfer: each source image takes the style of one target image.

This is the first component of *our interpretation* of CDSSL (Yu et al., arXiv 1911.07158; the paper
body was not available to us, METHODS.md §4.3 (1)): instead of one domain-level translation, every
labelled source image is restyled with an individual, randomly paired target image, and labels stay
untouched. Three ways to restyle:

* :class:`FourierTransfer` — FDA (Yang & Soatto, "FDA: Fourier Domain Adaptation for Semantic
  Segmentation", CVPR 2020): swap the low-frequency *amplitude* of the source spectrum for the
  reference's, keep the source *phase* (which carries the content)::

      F_s = FFT(x_s),  F_r = FFT(x_r)   (per channel, DC shifted to the centre)
      F_out = M_β ∘ |F_r| · exp(i·∠F_s) + (1 − M_β) ∘ F_s,      x_out = Re(IFFT(F_out))

  with ``M_β`` the centred ``(2b+1) × (2b+1)`` window of frequencies ``|k_y|, |k_x| <= b``,
  ``b = floor(β · min(H, W))`` (FDA's ``L``; the paper uses β = 0.01 at 1024×512, so on 32-pixel
  digits a useful window needs β of about 0.05–0.15);
* :class:`HistogramTransfer` — per-channel histogram (CDF) matching of the source to the reference
  (``skimage.exposure.match_histograms``);
* :class:`GeneratorTransfer` — a trained BDL / CycleGAN generator (domain-level: the reference is
  not used), for when one exists (:mod:`domadapt.pipeline.translate` loads it).

Every method is a callable ``method(image=HxWx3 uint8, reference=HxWx3 uint8) -> HxWx3 uint8``
(albumentations' keyword style; the pure float function :func:`fourier_amplitude_swap` is kept apart
from the uint8 wrapper, as albumentations keeps parameters apart from the functions that apply them).
:class:`StyleTransferred` applies one inside the data pipeline, *before* the dataset's augmentation
transform, so crops, flips and normalisation act on the restyled image exactly as on a raw one.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from torch import nn

from domadapt.data.base import DomainDataset, Transform


def _check_image(name: str, image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 image, got {got}")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class StyleTransfer(ABC):
    """Restyles one source image; subclasses implement :meth:`__call__`.

    Attributes:
        needs_reference: whether the output depends on ``reference`` (``False`` for a generator, whose
            style is that of the whole target domain).
    """

    needs_reference: ClassVar[bool] = True

    @abstractmethod
    def __call__(self, image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Restyle ``image`` towards ``reference``.

        Args:
            image: ``(H, W, 3)`` uint8 source image.
            reference: ``(H', W', 3)`` uint8 target image (any size).

        Returns:
            ``(H, W, 3)`` uint8, the same size as ``image``.
        """

    def describe(self) -> str:
        return type(self).__name__


# ---------------------------------------------------------------------------------------- FDA
def low_frequency_window(height: int, width: int, beta: float) -> tuple[slice, slice]:
    """Rows and columns of FDA's window ``M_β`` in the *centred* spectrum (``np.fft.fftshift``).

    The window holds the frequencies ``|k_y|, |k_x| <= b`` with ``b = floor(β · min(H, W))`` around
    the DC term at ``(H // 2, W // 2)``, clipped to the spectrum; it is symmetric under ``k -> −k``,
    so a swap inside it keeps the spectrum Hermitian and the image real. β = 0 gives an empty window.
    """
    if beta == 0:
        return slice(0, 0), slice(0, 0)
    b = int(math.floor(beta * min(height, width)))
    ch, cw = height // 2, width // 2
    return slice(max(ch - b, 0), min(ch + b + 1, height)), slice(max(cw - b, 0), min(cw + b + 1, width))


def fourier_amplitude_swap(image: np.ndarray, reference: np.ndarray, beta: float) -> np.ndarray:
    """FDA on float images: low-frequency amplitude of ``reference``, phase and the rest of ``image``.

    Args:
        image: ``(H, W, C)`` float source.
        reference: ``(H, W, C)`` float reference of the same shape.
        beta: window size, see :func:`low_frequency_window`.

    Returns:
        ``(H, W, C)`` float64, not clipped (see the module docstring for the formula).
    """
    if image.shape != reference.shape:
        raise ValueError(f"fourier_amplitude_swap: image {image.shape} and reference {reference.shape} differ")
    h, w = image.shape[:2]
    rows, cols = low_frequency_window(h, w, beta)
    f_src = np.fft.fftshift(np.fft.fft2(image.astype(np.float64), axes=(0, 1)), axes=(0, 1))  # (H, W, C) complex
    f_ref = np.fft.fftshift(np.fft.fft2(reference.astype(np.float64), axes=(0, 1)), axes=(0, 1))
    out = f_src.copy()
    out[rows, cols] = np.abs(f_ref[rows, cols]) * np.exp(1j * np.angle(f_src[rows, cols]))
    return np.fft.ifft2(np.fft.ifftshift(out, axes=(0, 1)), axes=(0, 1)).real


class FourierTransfer(StyleTransfer):
    """FDA low-frequency amplitude swap (Yang & Soatto, CVPR 2020) on uint8 images.

    The reference is resized (bilinear) to the source's size first; the result is rounded and clipped
    to ``[0, 255]``.

    Args:
        beta: window size β in ``[0, 0.5]`` (``b = floor(β · min(H, W))``); 0 leaves the image unchanged
            (a switch to turn the transfer off in a recipe), 0.5 swaps the whole amplitude of the
            shorter side. FDA's default is 0.01 on 1024×512 images.
    """

    def __init__(self, beta: float = 0.01) -> None:
        if not 0.0 <= beta <= 0.5:
            raise ValueError(f"FourierTransfer.beta: expected a value in [0, 0.5] (0 = off), got {beta}")
        self.beta = float(beta)

    def __call__(self, image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        _check_image("FourierTransfer image", image)
        if self.beta == 0:
            return image.copy()
        if reference is None:
            raise ValueError("FourierTransfer: a reference image is required")
        _check_image("FourierTransfer reference", reference)
        h, w = image.shape[:2]
        if reference.shape[:2] != (h, w):
            reference = cv2.resize(reference, (w, h), interpolation=cv2.INTER_LINEAR)
        return _to_uint8(fourier_amplitude_swap(image, reference, self.beta))

    def describe(self) -> str:
        return f"FourierTransfer(beta={self.beta})"


# ---------------------------------------------------------------------------------------- histograms
class HistogramTransfer(StyleTransfer):
    """Per-channel histogram matching: each channel's values are mapped so that its CDF follows the
    reference's (``skimage.exposure.match_histograms``; the reference may have any size)."""

    def __call__(self, image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        from skimage.exposure import match_histograms  # scikit-image is slow to import; only when used

        _check_image("HistogramTransfer image", image)
        if reference is None:
            raise ValueError("HistogramTransfer: a reference image is required")
        _check_image("HistogramTransfer reference", reference)
        return _to_uint8(match_histograms(image, reference, channel_axis=-1))


# ---------------------------------------------------------------------------------------- generator
class GeneratorTransfer(StyleTransfer):
    """A trained CycleGAN generator (BDL's translation stage) as a data-pipeline transfer.

    The style is the generator's idea of the whole target domain; the paired reference is ignored.
    The module is loaded lazily in the process that uses it (each DataLoader worker), on CPU.

    Args:
        generator: a :class:`~domadapt.methods.translation.Translation` checkpoint, a
            :class:`~domadapt.models.translation.ResnetGenerator` state dict, or a module.
        direction: ``"a2b"`` (source -> target, ``G_A``) or ``"b2a"``.
    """

    needs_reference: ClassVar[bool] = False

    def __init__(self, generator: str | os.PathLike | nn.Module, direction: Literal["a2b", "b2a"] = "a2b") -> None:
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"GeneratorTransfer.direction: expected 'a2b' or 'b2a', got {direction!r}")
        self.generator, self.direction = generator, direction
        self._module: nn.Module | None = generator if isinstance(generator, nn.Module) else None

    def module(self) -> nn.Module:
        if self._module is None:
            from domadapt.models.translation import load_generator

            self._module, _ = load_generator(self.generator, self.direction)
        return self._module.eval()

    def __call__(self, image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        _check_image("GeneratorTransfer image", image)
        module = self.module()
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # (1, 3, H, W)
        with torch.inference_mode():
            y = module(x.to(next(module.parameters()).device))[0].float().cpu()  # (3, H, W) in [-1, 1]
        return _to_uint8((y.permute(1, 2, 0).clamp(-1, 1).numpy() + 1.0) * 127.5)

    def describe(self) -> str:
        what = type(self.generator).__name__ if isinstance(self.generator, nn.Module) else str(self.generator)
        return f"GeneratorTransfer({what}, {self.direction})"

    def __getstate__(self) -> dict[str, Any]:  # workers reload a checkpoint path instead of receiving a copy
        state = dict(self.__dict__)
        if not isinstance(self.generator, nn.Module):
            state["_module"] = None
        return state


# ---------------------------------------------------------------------------------------- dataset
class StyleTransferred(DomainDataset):
    """A labelled dataset whose images are restyled by a randomly paired reference image.

    Sample ``i`` is paired with reference ``j(i)`` drawn from ``np.random.default_rng((seed, i))``
    (the same pairing in every epoch and every worker, so runs are reproducible and a restart sees the
    same data); with probability ``1 − p`` it is left as it is. Labels (masks, class ids) are never
    touched: the transfer changes appearance only. The restyled raw image then goes through the
    dataset's transform like any other.

    Args:
        dataset: the labelled source dataset.
        references: where paired images come from (the target training split); its labels are unused.
        method: the :class:`StyleTransfer` to apply.
        p: probability that a sample is restyled (decided once per index).
        seed: seed of the pairing.
        include_original: ``True`` doubles the dataset — indices ``0..N-1`` are the originals,
            ``N..2N-1`` their restyled copies — so training sees source and transferred source
            together (METHODS.md §4.3 (1)).
        transform: default the wrapped dataset's (``None`` lets the DataModule set it).
    """

    def __init__(self, dataset: DomainDataset, references: DomainDataset, method: StyleTransfer, p: float = 1.0,
                 seed: int = 0, include_original: bool = False, transform: Transform | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"StyleTransferred.p: expected a probability in [0, 1], got {p}")
        if not isinstance(method, StyleTransfer):
            raise TypeError(f"StyleTransferred.method: expected a StyleTransfer, got {type(method).__name__}")
        super().__init__(transform=transform if transform is not None else dataset.transform,
                         with_labels=dataset.with_labels, skip_corrupt=dataset.skip_corrupt)
        self.dataset, self.references, self.method = dataset, references, method
        self.p, self.seed, self.include_original = float(p), int(seed), bool(include_original)
        self.task = dataset.task  # type: ignore[misc]
        self.classes = tuple(dataset.classes)

    def describe(self) -> str:
        return (f"StyleTransferred({self.dataset.describe()}, {self.method.describe()}, p={self.p}"
                f"{', with originals' if self.include_original else ''})")

    def _index(self) -> list:
        n = len(self.dataset.setup())
        if self.method.needs_reference:
            self.references.setup()
        return list(range(2 * n if self.include_original else n))

    def pairing(self, index: int) -> int | None:
        """Reference index paired with sample ``index`` (``-1`` for a generator, which needs none), or
        ``None`` when the sample is shown unchanged."""
        n = len(self.dataset)
        if self.include_original and index < n:
            return None
        i = index % n
        rng = np.random.default_rng((self.seed, i))
        if rng.random() >= self.p:
            return None
        return int(rng.integers(len(self.references))) if self.method.needs_reference else -1

    def _load(self, entry: int) -> tuple[np.ndarray, Any]:
        image, target = self.dataset.load_raw(entry % len(self.dataset))
        j = self.pairing(entry)
        if j is None:
            return image, target
        reference = self.references.load_raw(j)[0] if j >= 0 else None
        return self.method(image=image, reference=reference), target
