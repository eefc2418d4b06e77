"""Per-sample style transfer: FDA against a NumPy FFT reference, histogram matching against empirical CDFs,
and the dataset wrapper (labels untouched, deterministic pairing, shapes and dtypes kept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from domadapt.data.base import ArrayDataset
from domadapt.data.style_transfer import (FourierTransfer, GeneratorTransfer, HistogramTransfer, StyleTransferred,
                                          fourier_amplitude_swap, low_frequency_window)
from domadapt.models.translation import ResnetGenerator


def smooth_image(seed: int, shape=(32, 32), lo=70.0, hi=180.0) -> np.ndarray:
    """A smooth random colour image in [lo, hi] (low-pass noise), so restyling rarely leaves [0, 255]."""
    rng = np.random.default_rng(seed)
    h, w = shape
    small = rng.uniform(0, 1, (4, 4, 3))
    yy, xx = np.linspace(0, 3, h), np.linspace(0, 3, w)
    rows = np.stack([np.stack([np.interp(xx, np.arange(4), small[r, :, c]) for c in range(3)], -1) for r in range(4)])
    img = np.stack([np.stack([np.interp(yy, np.arange(4), rows[:, x, c]) for c in range(3)], -1)
                    for x in range(w)], 1)  # (H, W, 3) bilinear upsampling of the 4x4 grid
    return (lo + (hi - lo) * img + rng.normal(0, 3, (h, w, 3))).astype(np.float64)


def centred_fft(image: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(image.astype(np.float64), axes=(0, 1)), axes=(0, 1))


@pytest.mark.parametrize("shape", [(32, 32), (33, 40), (24, 17)])
@pytest.mark.parametrize("beta", [0.01, 0.1, 0.25, 0.5])
def test_amplitude_swap_takes_reference_amplitude_and_source_phase(shape, beta):
    src, ref = smooth_image(0, shape), smooth_image(1, shape, 20, 240)
    out = fourier_amplitude_swap(src, ref, beta)
    f_src, f_ref, f_out = centred_fft(src), centred_fft(ref), centred_fft(out)
    b = int(np.floor(beta * min(shape)))
    ch, cw = shape[0] // 2, shape[1] // 2
    inside = np.zeros(shape, bool)
    inside[max(ch - b, 0):ch + b + 1, max(cw - b, 0):cw + b + 1] = True  # |k_y|, |k_x| <= b around DC
    scale = np.abs(f_src).max()
    np.testing.assert_allclose(np.abs(f_out[inside]), np.abs(f_ref[inside]), atol=1e-9 * scale)
    nonzero = inside[..., None] & (np.abs(f_ref) > 1e-6 * scale) & (np.abs(f_src) > 1e-6 * scale)
    phase_diff = np.angle(f_out[nonzero] * np.conj(f_src[nonzero]))  # wrapped difference of phases
    np.testing.assert_allclose(phase_diff, 0.0, atol=1e-7)
    np.testing.assert_allclose(f_out[~inside], f_src[~inside], atol=1e-9 * scale)  # the rest untouched
    rows, cols = low_frequency_window(*shape, beta)
    assert inside[rows, cols].all() and inside.sum() == (rows.stop - rows.start) * (cols.stop - cols.start)


def test_fda_with_beta_zero_returns_the_image():
    src = smooth_image(0).astype(np.uint8)
    out = FourierTransfer(beta=0.0)(image=src, reference=smooth_image(1).astype(np.uint8))
    assert out.dtype == np.uint8 and np.array_equal(out, src)


def test_fda_on_uint8_moves_low_frequencies_to_the_reference():
    src, ref = smooth_image(0, (32, 48)), smooth_image(1, (32, 48), 40, 220)
    assert 0 <= fourier_amplitude_swap(src, ref, 0.1).min() and fourier_amplitude_swap(src, ref, 0.1).max() <= 255
    src8, ref8 = src.round().astype(np.uint8), ref.round().astype(np.uint8)
    out = FourierTransfer(beta=0.1)(image=src8, reference=ref8)
    assert out.shape == src8.shape and out.dtype == np.uint8
    rows, cols = low_frequency_window(32, 48, 0.1)
    a_out, a_ref, a_src = (np.abs(centred_fft(x)[rows, cols]) for x in (out, ref8, src8))
    tol = 0.5 * 32 * 48  # rounding moves each pixel by <= 0.5, each Fourier coefficient by <= 0.5 * H * W
    assert np.abs(a_out - a_ref).max() <= tol
    assert np.abs(a_src - a_ref).max() > 4 * tol  # the check above is not trivially true
    assert np.abs(out.mean((0, 1)) - ref8.mean((0, 1))).max() < 1.0  # the DC term is the mean colour


def test_fda_resizes_a_reference_of_another_size():
    src = smooth_image(0, (32, 32)).astype(np.uint8)
    out = FourierTransfer(beta=0.1)(image=src, reference=smooth_image(1, (50, 70)).astype(np.uint8))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("beta", [-0.01, 0.51, 1.0])
def test_fda_beta_outside_range_is_an_error(beta):
    with pytest.raises(ValueError, match=r"FourierTransfer.beta: expected a value in \[0, 0.5\]"):
        FourierTransfer(beta=beta)


def test_bad_images_are_one_line_errors():
    with pytest.raises(ValueError, match=r"FourierTransfer image: expected an \(H, W, 3\) uint8 image, got float64"):
        FourierTransfer(0.1)(image=np.zeros((8, 8, 3)), reference=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="a reference image is required"):
        HistogramTransfer()(image=np.zeros((8, 8, 3), np.uint8))


def channel_cdf(values: np.ndarray) -> np.ndarray:
    return np.cumsum(np.bincount(values.ravel(), minlength=256)) / values.size


def test_histogram_matching_makes_channel_cdfs_match():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)  # flat histograms
    ref = np.stack([rng.beta(2, 8, (40, 50)), rng.beta(5, 5, (40, 50)), rng.beta(8, 1.5, (40, 50))], -1)
    ref = (ref * 255).round().astype(np.uint8)  # three skewed histograms, another size
    out = HistogramTransfer()(image=src, reference=ref)
    assert out.shape == src.shape and out.dtype == np.uint8
    for c in range(3):
        before = np.abs(channel_cdf(src[..., c]) - channel_cdf(ref[..., c])).max()
        after = np.abs(channel_cdf(out[..., c]) - channel_cdf(ref[..., c])).max()  # Kolmogorov-Smirnov distance
        assert before > 0.2 and after < 0.02, (c, before, after)


def test_generator_transfer_keeps_shape_and_ignores_the_reference():
    torch.manual_seed(0)
    g = GeneratorTransfer(ResnetGenerator(ngf=4, n_blocks=1))
    src = smooth_image(0, (30, 34)).astype(np.uint8)
    out = g(image=src, reference=None)
    assert out.shape == src.shape and out.dtype == np.uint8 and not g.needs_reference
    assert np.array_equal(out, g(image=src, reference=smooth_image(1).astype(np.uint8)))


# ---------------------------------------------------------------------------------------- the dataset wrapper
def domains(task: str):
    rng = np.random.default_rng(0)
    n = 12
    src = np.stack([smooth_image(i, (16, 16)) for i in range(n)]).astype(np.uint8)
    ref = np.stack([smooth_image(100 + i, (16, 16), 20, 240) for i in range(7)]).astype(np.uint8)
    if task == "classification":
        y, yr = rng.integers(0, 4, n), np.zeros(7, np.int64)
    else:
        y, yr = rng.integers(0, 4, (n, 16, 16)).astype(np.uint8), np.zeros((7, 16, 16), np.uint8)
    return (ArrayDataset(src, y, tuple("abcd"), task=task, name="src"),
            ArrayDataset(ref, yr, tuple("abcd"), task=task, name="ref"))


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_wrapper_restyles_with_the_paired_reference_and_keeps_labels(task):
    src, ref = domains(task)
    method = FourierTransfer(0.2)
    ds = StyleTransferred(src, ref, method, seed=3).setup()
    assert len(ds) == len(src) and ds.task == task and ds.classes == src.classes
    for i in range(len(ds)):
        image, target = ds.load_raw(i)
        j = ds.pairing(i)
        assert 0 <= j < len(ref)
        assert image.shape == src.images[i].shape and image.dtype == np.uint8
        assert np.array_equal(image, method(image=src.images[i], reference=ref.images[j]))
        assert np.array_equal(np.asarray(target), np.asarray(src.targets[i]))  # labels untouched
    sample = ds[0]
    key = "label" if task == "classification" else "mask"
    assert torch.equal(sample[key], torch.as_tensor(np.asarray(src.targets[0])).long())
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32


def test_pairing_is_deterministic_per_seed_and_index():
    src, ref = domains("classification")
    a = StyleTransferred(src, ref, HistogramTransfer(), seed=1).setup()
    b = StyleTransferred(src, ref, HistogramTransfer(), seed=1).setup()
    c = StyleTransferred(src, ref, HistogramTransfer(), seed=2).setup()
    pa, pb, pc = ([d.pairing(i) for i in range(len(src))] for d in (a, b, c))
    assert pa == pb and pa != pc
    for i in (5, 0, 5):  # order of access does not matter (no shared random state)
        assert np.array_equal(a.load_raw(i)[0], b.load_raw(i)[0])


def test_probability_and_include_original():
    src, ref = domains("classification")
    assert all(StyleTransferred(src, ref, FourierTransfer(0.2), p=0.0).setup().pairing(i) is None for i in range(12))
    half = StyleTransferred(src, ref, FourierTransfer(0.2), p=0.5, seed=0).setup()
    big = ArrayDataset(np.zeros((2000, 4, 4, 3), np.uint8), np.zeros(2000, np.int64), ("a",))
    many = StyleTransferred(big, ref, FourierTransfer(0.2), p=0.3).setup()
    share = np.mean([many.pairing(i) is not None for i in range(2000)])
    assert abs(share - 0.3) < 0.04
    both = StyleTransferred(src, ref, FourierTransfer(0.2), include_original=True, seed=0).setup()
    assert len(both) == 2 * len(src)
    for i in range(len(src)):
        assert np.array_equal(both.load_raw(i)[0], src.images[i])  # the originals first
        paired = ref.images[both.pairing(len(src) + i)]
        assert np.array_equal(both.load_raw(len(src) + i)[0], half.method(image=src.images[i], reference=paired))
        assert both.load_raw(len(src) + i)[1] == src.targets[i]
    with pytest.raises(ValueError, match=r"StyleTransferred.p: expected a probability in \[0, 1\], got 1.5"):
        StyleTransferred(src, ref, FourierTransfer(0.2), p=1.5)
