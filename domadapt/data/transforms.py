"""Augmentation pipelines (albumentations; the only module that imports it).

:class:`Augment` is a typed, YAML-friendly description of the usual UDA pipeline
(resize -> random scale -> crop -> flip -> colour jitter -> normalise -> tensor). Geometric
transforms are applied identically to image and mask; masks are resized nearest-neighbour and
padded with 255 (ignore).
"""

from __future__ import annotations

from typing import Literal

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

from domadapt.data.balanced_crop import BalancedRandomCrop
from domadapt.data.batching import pixel_table
from domadapt.structures import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The released DeepLab-V2 code (BDL data/__init__.py:8, AdaptSegNet) feeds BGR 0-255 images minus IMG_MEAN =
# (104.00698793, 116.66876762, 122.67891434) in BGR order: the same normalisation in [0, 1] units, RGB order (a
# network with input_channels "bgr" reverses the channels after it).
CAFFE_MEAN = (122.67891434 / 255, 116.66876762 / 255, 104.00698793 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)
_INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}
_PIL_FILTER = {"nearest": Image.NEAREST, "linear": Image.BILINEAR, "cubic": Image.BICUBIC, "area": Image.BOX}


def shorter_side_size(height: int, width: int, side: int) -> tuple[int, int]:
    """``(height, width)`` with the shorter side ``side`` and the longer one ``int(side * long / short)`` (torchvision's
    ``Scale``/``Resize(int)`` rule at the time of the DRT code)."""
    if width < height:
        return int(side * height / width), side
    return side, int(side * width / height)


def within_size(height: int, width: int, bound: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` scaled by ``s = min(long / max(height, width), short / min(height, width))`` for ``bound =
    (short, long)``, each side ``int(side * s + 0.5)``: the largest size inside the bound with the same aspect ratio
    (mmcv ``imrescale`` / ``rescale_size``, mmseg ``Resize(img_scale, keep_ratio=True)``; GTA5's 1052x1914 in
    (720, 1280): 704x1280)."""
    short, long = min(bound), max(bound)
    s = min(long / max(height, width), short / min(height, width))
    return int(height * s + 0.5), int(width * s + 0.5)


class PillowResize(A.DualTransform):
    """Resize with Pillow: the image with the antialiased ``filter``, the mask nearest-neighbour (``Image.resize``
    as the released BDL / AdaptSegNet / DRT loaders call it), to ``size = (height, width)``, with ``side`` the
    shorter side to ``side`` (:func:`shorter_side_size`), or with ``within = (short, long)`` keeping the aspect ratio
    inside that bound (:func:`within_size`)."""

    def __init__(self, size: tuple[int, int] | None = None, side: int | None = None, filter: int = Image.BICUBIC,
                 within: tuple[int, int] | None = None, p: float = 1.0) -> None:
        super().__init__(p=p)
        if sum(v is not None for v in (size, side, within)) != 1:
            raise ValueError("PillowResize: give exactly one of size=(height, width), side and within=(short, long)")
        self.size, self.side, self.filter, self.within = size, side, filter, within

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        if self.side:
            return shorter_side_size(height, width, self.side)
        return within_size(height, width, self.within) if self.within else tuple(self.size)

    def _resize(self, img: np.ndarray, resample: int) -> np.ndarray:
        h, w = self._target_size(img.shape[0], img.shape[1])
        if (h, w) == img.shape[:2]:
            return img
        if img.ndim == 3 and img.shape[2] not in (3, 4):  # Pillow has no mode for these: one channel at a time
            return np.stack([self._resize(img[..., c], resample) for c in range(img.shape[2])], axis=-1)
        return np.array(Image.fromarray(img).resize((w, h), resample))  # writable, for ToTensorV2

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return self._resize(img, self.filter)

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        return self._resize(mask, Image.NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "side", "filter", "within")


class Augment:
    """Callable image(/mask) pipeline: ``Augment(...)(image=HWC uint8, mask=HW uint8) -> dict``.

    Args:
        resize_shorter: resize first so that the shorter side is this long, keeping the aspect ratio (the
            longer side truncated to an int): torchvision's ``Resize(n)`` / ``Scale(n)`` on a PIL image, as the
            released DRT code and most classification code resize.
        resize: ``(height, width)`` to resize to first (after ``resize_shorter``), or ``None``: ``Image.resize``
            as the released BDL / AdaptSegNet loaders call it. Every resize uses Pillow, antialiased, in training
            and evaluation alike (``interpolation`` picks the filter; masks: Pillow nearest).
        resize_within: ``(short, long)``: instead of ``resize``, scale keeping the aspect ratio to the largest size
            whose sides fit (:func:`within_size`; mmseg's ``Resize(img_scale=(long, short))``, as DAFormer resizes its
            source images; its resampling is OpenCV's bilinear without antialiasing).
        scale: random rescale range ``(lo, hi)`` applied after ``resize`` (e.g. ``(0.5, 1.5)``; OpenCV).
        crop: ``(height, width)`` random crop (padded with 0 / 255 first if the image is smaller);
            in ``train=False`` mode a centre crop.
        cat_max_ratio: re-draw a training crop (up to 10 times) while one class covers ``>=`` this share of its
            labelled pixels (:class:`~domadapt.data.balanced_crop.BalancedRandomCrop`, mmseg / DAFormer: 0.75);
            1 = off.
        hflip: probability of a horizontal flip.
        color_jitter: strength of brightness/contrast/saturation jitter (hue gets a quarter); 0 = off.
        mean: per-channel mean in [0, 1] units for normalisation.
        std: per-channel std in [0, 1] units.
        interpolation: image interpolation for resizing (masks always use nearest).
        train: random (training) or deterministic (evaluation) behaviour.
        full_resolution_mask: evaluation only: resize the image but leave the mask at its original size, so that
            predictions are scored at the label's full resolution (probabilities upsampled to it: the BDL protocol,
            :mod:`domadapt.evaluation.inference`). Needs ``train=False`` and no ``crop``.

    Returns (on call):
        dict with ``image`` ``(3, H, W)`` float32 and, when a mask was given, ``mask`` ``(H, W)`` uint8.
    """

    def __init__(
        self,
        resize: tuple[int, int] | None = None,
        scale: tuple[float, float] | None = None,
        crop: tuple[int, int] | None = None,
        hflip: float = 0.0,
        color_jitter: float = 0.0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        interpolation: Literal["nearest", "linear", "cubic", "area"] = "linear",
        train: bool = True,
        resize_shorter: int | None = None,
        full_resolution_mask: bool = False,
        resize_within: tuple[int, int] | None = None,
        cat_max_ratio: float = 1.0,
    ) -> None:
        for name, v in (("resize", resize), ("crop", crop), ("resize_within", resize_within)):
            if v is not None and (len(v) != 2 or min(v) <= 0):
                raise ValueError(f"Augment.{name}: expected (height, width) of positive ints, got {v}")
        if resize is not None and resize_within is not None:
            raise ValueError(f"Augment.resize_within: give resize or resize_within, not both; got {resize} and "
                             f"{resize_within}")
        if not 0.0 < cat_max_ratio <= 1.0:
            raise ValueError(f"Augment.cat_max_ratio: expected a share in (0, 1], got {cat_max_ratio}")
        if resize_shorter is not None and resize_shorter <= 0:
            raise ValueError(f"Augment.resize_shorter: expected a positive side length, got {resize_shorter}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"Augment.hflip: expected a probability in [0, 1], got {hflip}")
        if color_jitter < 0:
            raise ValueError(f"Augment.color_jitter: expected >= 0, got {color_jitter}")
        if full_resolution_mask and (train or crop is not None):
            raise ValueError("Augment.full_resolution_mask: only for evaluation transforms (train: false) without "
                             f"crop; got train={train}, crop={crop}")
        self.resize, self.scale, self.crop, self.hflip = resize, scale, crop, hflip
        self.color_jitter, self.mean, self.std = color_jitter, tuple(mean), tuple(std)
        self.interpolation, self.train, self.resize_shorter = interpolation, train, resize_shorter
        self.full_resolution_mask, self.resize_within, self.cat_max_ratio = (full_resolution_mask, resize_within,
                                                                              float(cat_max_ratio))
        self.pipeline = A.Compose(self._ops())
        self._table: torch.Tensor | None = None

    def _ops(self) -> list:
        interp = _INTERP[self.interpolation]
        ops: list = []
        if self.resize_shorter is not None:
            ops.append(PillowResize(side=self.resize_shorter, filter=_PIL_FILTER[self.interpolation]))
        if self.resize is not None:
            ops.append(PillowResize(size=tuple(self.resize), filter=_PIL_FILTER[self.interpolation]))
        if self.resize_within is not None:
            ops.append(PillowResize(within=tuple(self.resize_within), filter=_PIL_FILTER[self.interpolation]))
        if self.scale is not None and self.train:
            lo, hi = self.scale
            ops.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=interp,
                                     mask_interpolation=cv2.INTER_NEAREST, p=1.0))
        if self.crop is not None:
            h, w = self.crop
            ops.append(A.PadIfNeeded(h, w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX))
            if not self.train:
                ops.append(A.CenterCrop(h, w))
            else:
                balanced = self.cat_max_ratio < 1
                ops.append(BalancedRandomCrop(h, w, self.cat_max_ratio) if balanced else A.RandomCrop(h, w))
        if self.train and self.hflip > 0:
            ops.append(A.HorizontalFlip(p=self.hflip))
        if self.train and self.color_jitter > 0:
            j = self.color_jitter
            ops.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j / 4, 0.5), p=1.0))
        ops.append(A.Normalize(mean=self.mean, std=self.std, max_pixel_value=255.0))
        ops.append(ToTensorV2())
        return ops

    @property
    def pixelwise(self) -> bool:
        """Whether every output pixel depends only on the same input pixel's value and channel (normalisation
        alone: no resize, crop, rescale, flip or jitter acts)."""
        random_ops = self.scale is not None or self.hflip > 0 or self.color_jitter > 0
        return (self.resize is None and self.resize_shorter is None and self.resize_within is None and self.crop is None
                and not (self.train and random_ops))

    def pixel_table(self) -> torch.Tensor | None:
        """The pipeline as a :func:`~domadapt.data.batching.pixel_table` when it is :attr:`pixelwise`, else ``None``
        (a batch of in-memory images is then transformed in one lookup, bit for bit as sample by sample)."""
        if not self.pixelwise:
            return None
        if self._table is None:
            self._table = pixel_table(self)
        return self._table

    def reseed(self, seed: int) -> None:
        """Seed the random choices of the next call (a training draw's seed, :mod:`domadapt.data.resumable`).

        Without it albumentations seeds itself from the operating system, so runs with the same seed
        would still augment differently.
        """
        self.pipeline.set_random_seed(int(seed))

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> dict:
        if mask is None:
            return self.pipeline(image=image)
        if self.full_resolution_mask:
            return {**self.pipeline(image=image), "mask": torch.from_numpy(np.ascontiguousarray(mask))}
        return self.pipeline(image=image, mask=mask)

    def __repr__(self) -> str:
        return (f"Augment(resize_shorter={self.resize_shorter}, resize={self.resize}, "
                f"resize_within={self.resize_within}, scale={self.scale}, crop={self.crop}, "
                f"cat_max_ratio={self.cat_max_ratio}, hflip={self.hflip}, "
                f"color_jitter={self.color_jitter}, train={self.train}, "
                f"full_resolution_mask={self.full_resolution_mask})")

    def __getstate__(self):  # pickle the description, rebuild the pipeline in the worker
        state = dict(self.__dict__)
        state.pop("pipeline")
        state.pop("_table", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update({"resize_within": None, "cat_max_ratio": 1.0, **state})  # pickles of older versions
        self._table = None
        self.pipeline = A.Compose(self._ops())


def denormalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Undo :class:`Augment` normalisation: ``(3, H, W)`` tensor -> ``(H, W, 3)`` uint8 for plots."""
    a = image.detach().cpu().float().numpy().transpose(1, 2, 0)
    a = a * np.asarray(std) + np.asarray(mean)
    return (a.clip(0, 1) * 255).round().astype(np.uint8)
