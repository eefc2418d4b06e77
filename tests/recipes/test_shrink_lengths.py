"""The smoke shrink scales crop lengths (DAFormer's pseudo-label margins, MIC's block) and pixel counts (rare-class
sampling's min_pixels) with the images."""

from domadapt.recipes.shrink import Shrink, shrink


def test_lengths_scale_by_scale_and_pixel_counts_by_its_square():
    node = {"psweight_ignore_top": 15, "psweight_ignore_bottom": 120, "mic_block": 32, "rcs_min_pixels": 3000,
            "other": 15}
    out = shrink(node, Shrink(scale=1 / 16))
    assert out == {"psweight_ignore_top": 1, "psweight_ignore_bottom": 8, "mic_block": 2, "rcs_min_pixels": 12,
                   "other": 15}
    assert shrink(node, Shrink(scale=1.0)) == node
    assert shrink({"psweight_ignore_top": 0}, Shrink(scale=1 / 16)) == {"psweight_ignore_top": 0}
