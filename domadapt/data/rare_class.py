"""Rare-class sampling (RCS) of source images (DAFormer, Hoyer et al., CVPR 2022), as a resumable sampler.

A source dataset dominated by a few classes (road, building, sky) shows the rare ones (rider, train,
motorcycle) so seldom that a model adapts late to them or never. RCS draws source images *for a
class*: rare classes are drawn more often, and an image is drawn among those that show the class.
What we verified in the released code (``lhoyer/DAFormer`` @e6f6e04):

* ``n_c``: pixels of class ``c`` over the source labels, in train ids (ignored pixels are not counted:
  ``tools/convert_datasets/gta.py:40-47`` counts only the ids mapped to a train id, and only ``n > 0``);
  ``f_c = n_c / Σ_k n_k`` (``mmseg/datasets/uda_dataset.py:20-35``, normalised by the counted pixels);
* ``p_c = exp((1 − f_c) / T) / Σ_{k: n_k > 0} exp((1 − f_k) / T)`` over the classes with ``n_c > 0``
  (``uda_dataset.py:36-37``; ``T = 0.01``: ``configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_
  daformer_mitb5_s0.py:35-36``); a class never seen is never drawn;
* a draw picks ``c ~ p``, then an image uniformly among ``I_c = {i : n_{i,c} > min_pixels}`` -- strictly
  more than ``min_pixels`` pixels (``uda_dataset.py:79-81, 91-92``; ``min_pixels = 3000`` in the config) --
  independently of every other draw (with replacement);
* the random crop is then re-drawn while it shows too little of ``c``:
  :class:`~domadapt.data.rare_class_crops.RareClassCrops` (``uda_dataset.py:95-105``).

DAFormer stops with an assertion when a class with ``n_c > 0`` has no image in ``I_c``
(``uda_dataset.py:82``); here such a class gets ``p_c = 0`` (the others are renormalised), is listed in
:attr:`RareClassSampler.excluded_classes` and a warning names it. Probabilities are float64 here
(DAFormer: float32 torch tensors).

Each yielded index is a :class:`RareClassIndex`: a :class:`~domadapt.data.resumable.SeededIndex` that
also carries the class it was drawn for. Draws are a pure function of ``(seed, epoch, pass)``; ranks
keep disjoint positions of one global draw (:class:`~domadapt.data.resumable.ResumableRandomSampler`).
"""

from __future__ import annotations

import warnings

import numpy as np

from domadapt.data.resumable import ResumableRandomSampler, SeededIndex


def rare_class_probs(class_pixels: np.ndarray, temperature: float = 0.01) -> np.ndarray:
    """DAFormer's class probabilities from the pixel count of each class.

    Args:
        class_pixels: ``(K,)`` pixels of each class over the source set (or ``(N, K)`` per image, summed
            over images).
        temperature: ``T > 0``; small ``T`` favours rare classes sharply (``T → ∞``: uniform over classes).

    Returns:
        ``(K,)`` float64 ``p_c = exp((1 − f_c) / T) / Σ_{k: n_k > 0} exp((1 − f_k) / T)`` with
        ``f_c = n_c / Σ_k n_k``; ``p_c = 0`` where ``n_c = 0``.
    """
    if not temperature > 0:
        raise ValueError(f"rare_class_probs.temperature: expected T > 0, got {temperature}")
    n = np.asarray(class_pixels, dtype=np.int64)
    n = n.sum(0) if n.ndim == 2 else n.reshape(-1)  # (K,)
    if (n < 0).any() or n.sum() == 0:
        raise ValueError("rare_class_probs.class_pixels: expected non-negative counts with at least one pixel")
    f = n / n.sum()  # (K,) share of the counted pixels
    logits = (1.0 - f) / float(temperature)
    present = n > 0
    z = np.where(present, logits - logits[present].max(), -np.inf)  # shifted: exp never overflows
    p = np.exp(z)
    return p / p.sum()


class RareClassIndex(SeededIndex):
    """A :class:`~domadapt.data.resumable.SeededIndex` that also carries the class it was drawn for."""

    rare_class: int

    def __new__(cls, index: int, seed: int, rare_class: int) -> RareClassIndex:
        obj = super().__new__(cls, index, seed)
        obj.rare_class = int(rare_class)
        return obj

    def __reduce__(self):  # DataLoader workers receive indices through pickling
        return RareClassIndex, (int(self), self.seed, self.rare_class)


class RareClassSampler(ResumableRandomSampler):
    """Draws source images by rare-class sampling (a class by ``p``, then an image showing it).

    Args:
        class_pixels: ``(N, K)`` pixels of each class in each source image (train ids, ignore excluded);
            see :func:`~domadapt.data.class_pixels.class_pixel_counts`.
        temperature: ``T`` of :func:`rare_class_probs` (DAFormer: 0.01).
        min_pixels: image ``i`` may be drawn for class ``c`` when ``class_pixels[i, c] > min_pixels``
            (DAFormer: 3000).
        num_samples: draws per pass over all ranks; default ``N``.
        seed: base seed; pass ``p`` of epoch ``e`` draws from ``default_rng((seed, e, p))``.
        num_replicas: processes sharing the draw (default: the process group's world size, else 1).
        rank: this process (default: its rank in the process group, else 0).

    Attributes:
        class_probs: ``(K,)`` probability of drawing each class (0 for absent and excluded classes).
        frequencies: ``(K,)`` ``f_c``, the share of class ``c`` among the counted pixels.
        members: per class, the images it may draw (``(|I_c|,)`` int64, ascending).
        excluded_classes: classes with pixels but no image above ``min_pixels`` (``p_c`` set to 0).
    """

    def __init__(self, class_pixels: np.ndarray, temperature: float = 0.01, min_pixels: int = 3000,
                 num_samples: int | None = None, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        counts = np.asarray(class_pixels, dtype=np.int64)
        if counts.ndim != 2:
            raise ValueError(f"RareClassSampler.class_pixels: expected an (N, K) array, got shape {counts.shape}")
        if not temperature > 0:
            raise ValueError(f"RareClassSampler.temperature: expected T > 0, got {temperature}")
        if min_pixels < 0:
            raise ValueError(f"RareClassSampler.min_pixels: expected >= 0, got {min_pixels}")
        if counts.size == 0 or counts.sum() == 0:
            raise ValueError("RareClassSampler.class_pixels: no labelled pixel in the source set; nothing to sample")
        self.temperature, self.min_pixels = float(temperature), int(min_pixels)
        self.num_images, self.num_classes = counts.shape
        totals = counts.sum(0)  # (K,)
        self.frequencies = totals / totals.sum()
        self.members = [np.flatnonzero(counts[:, c] > self.min_pixels) for c in range(self.num_classes)]
        self.excluded_classes = [c for c in range(self.num_classes) if totals[c] > 0 and len(self.members[c]) == 0]
        p = rare_class_probs(totals, self.temperature)
        p[self.excluded_classes] = 0.0
        if p.sum() == 0:
            raise ValueError(f"RareClassSampler.min_pixels: no image has more than {self.min_pixels} pixels of any "
                             "class; lower min_pixels")
        if self.excluded_classes:
            warnings.warn(f"RareClassSampler: classes {self.excluded_classes} have pixels but no image with more "
                          f"than {self.min_pixels} of them; they are never drawn (DAFormer would stop here)",
                          stacklevel=2)
        self.class_probs = p / p.sum()
        super().__init__(0, seed, num_replicas, rank)
        self._set_size(self.num_images if num_samples is None else int(num_samples))

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` independent draws: ``(images, classes)``, both ``(n,)`` int64.

        ``classes[j] ~ p``; ``images[j]`` uniform over ``members[classes[j]]``.
        """
        classes = rng.choice(self.num_classes, size=n, p=self.class_probs).astype(np.int64)
        images = np.empty(n, np.int64)
        for c in np.unique(classes):  # ascending, so the generator is consumed in a fixed order
            at = np.flatnonzero(classes == c)
            images[at] = self.members[c][rng.integers(0, len(self.members[c]), size=len(at))]
        return images, classes

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """The images of one pass's global draw (``total_size`` of them)."""
        return self.draw(self.total_size, rng)[0]

    def columns(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        return self.draw(self.total_size, rng)

    def make_index(self, index: int, seed: int, *extra: int) -> RareClassIndex:
        return RareClassIndex(index, seed, extra[0])

    def describe(self) -> dict:
        """JSON-friendly summary: class probabilities and frequencies, eligible images per class, sizes."""
        return {"temperature": self.temperature, "min_pixels": self.min_pixels, "num_images": self.num_images,
                "class_probs": [round(float(p), 6) for p in self.class_probs],
                "frequencies": [round(float(f), 6) for f in self.frequencies],
                "images_per_class": [len(m) for m in self.members], "excluded_classes": self.excluded_classes,
                "total_size": self.total_size}
