"""Qualitative pictures: predictions_target.png after ``test`` (pixels, titles, TensorBoard) and BDL samples.png."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger

from domadapt.data.catalog import CS13_CLASSES, CS16_CLASSES, CS19_CLASSES, CS19_PALETTE, PROTOCOLS
from domadapt.evaluation.pictures import palette_for, plot_translation_samples
from domadapt.methods import SourceOnly
from domadapt.models.translation import ResnetGenerator
from domadapt.pipeline.translate import translate_dataset
from tests.conftest import random_domain, tiny_datamodule, tiny_net

STEPS = 12  # enough for the tiny nets to predict several classes
GAP = 4  # white pixels between panels (plot_predictions' default)
GREEN, RED = (44, 160, 44), (214, 39, 40)  # matplotlib tab:green / tab:red: the title colours


def fit_and_test(task: str, tmp_path):
    """A few training steps, then ``trainer.test`` (which writes the report) with a TensorBoard logger."""
    dm = tiny_datamodule(task)
    if task == "segmentation":
        dm.target_test.targets[0, :4, :6] = 255  # an ignored region on the first drawn sample
    module = SourceOnly(tiny_net(task))
    trainer = pl.Trainer(max_steps=STEPS, limit_val_batches=0, logger=TensorBoardLogger(tmp_path, name="tb"),
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    trainer.fit(module, dm)
    trainer.test(module, datamodule=dm, verbose=False)
    return module, dm, trainer


def reference_argmax(module, dm, n: int = 4) -> tuple[torch.Tensor, list[dict]]:
    """Predictions computed here, straight from the network in eval mode."""
    samples = [dm.target_test[i] for i in range(n)]
    module.eval()
    with torch.no_grad():
        logits = module.net(torch.stack([s["image"] for s in samples])).logits
    return logits.argmax(1), samples


def images_logged(log_dir) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    acc.Reload()
    return acc.Tags()["images"]


def test_segmentation_picture_is_image_prediction_truth_in_palette(tmp_path):
    module, dm, trainer = fit_and_test("segmentation", tmp_path)
    path = tmp_path / "tb" / "version_0" / "predictions_target.png"
    grid = np.asarray(Image.open(path).convert("RGB"))
    h, w = 32, 48  # tiny segmentation domain
    assert grid.shape == (4 * h + 3 * GAP, 3 * w + 2 * GAP, 3)
    pred, samples = reference_argmax(module, dm)
    assert len(pred.unique()) > 1  # several classes predicted: the colour check below is meaningful
    palette = np.asarray(CS19_PALETTE, np.uint8)
    for i in range(4):
        row = grid[i * (h + GAP): i * (h + GAP) + h]
        raw = dm.target_test.images[i]
        np.testing.assert_allclose(row[:, :w].astype(int), raw.astype(int), atol=1)  # the i-th target image
        np.testing.assert_array_equal(row[:, w + GAP: 2 * w + GAP], palette[pred[i].numpy()])
        truth = samples[i]["mask"].numpy()
        expected = palette[truth.clip(0, 18)]
        expected[truth == 255] = 0  # ignore drawn black
        np.testing.assert_array_equal(row[:, 2 * (w + GAP):], expected)
    assert (grid[:4, 2 * (w + GAP): 2 * (w + GAP) + 6] == 0).all()
    assert "test/target/predictions" in images_logged(trainer.logger.log_dir)


def test_classification_picture_titles_say_right_or_wrong(tmp_path):
    module, dm, trainer = fit_and_test("classification", tmp_path)
    grid = np.asarray(Image.open(tmp_path / "tb" / "version_0" / "predictions_target.png").convert("RGB"))
    assert grid.shape == (250, 800, 3)  # 4 panels of 2 x 2.5 inches at 100 dpi
    pred, samples = reference_argmax(module, dm)
    titles = grid[:50]  # the title band above the images
    for i in range(4):
        band = titles[:, i * 200: (i + 1) * 200]
        right = bool(pred[i] == samples[i]["label"])
        has = {c: bool((band == c).all(-1).any()) for c in (GREEN, RED)}
        assert has == {GREEN: right, RED: not right}, f"panel {i}: prediction right={right}, title colours {has}"
    assert "test/target/predictions" in images_logged(trainer.logger.log_dir)


def test_palette_follows_the_protocol_subsets():
    assert palette_for(CS19_CLASSES) == CS19_PALETTE
    for names, protocol in ((CS16_CLASSES, "16"), (CS13_CLASSES, "13")):
        palette = palette_for(names)
        assert len(palette) == len(names)
        assert all(palette[j] == CS19_PALETTE[i] for j, i in enumerate(PROTOCOLS[protocol]))
    assert palette_for(("a", "b")) == CS19_PALETTE


def test_translation_samples_show_sources_next_to_translations(tmp_path):
    src = random_domain("segmentation", 6, 0, size=(32, 48))
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=4, n_blocks=1)
    out = tmp_path / "out"
    translate_dataset(g, src, out, layout="generic", size=(24, 40), show_progress=False)
    grid = np.asarray(Image.open(out / "samples.png"))
    h, w = 24, 40
    assert grid.shape == (4 * h + 3 * GAP, 2 * w + GAP, 3)
    for i in range(4):
        row = grid[i * (h + GAP): i * (h + GAP) + h]
        resized = np.asarray(Image.fromarray(src.images[i]).resize((w, h), Image.BICUBIC))
        np.testing.assert_array_equal(row[:, :w], resized)
        np.testing.assert_array_equal(row[:, w + GAP:], np.asarray(Image.open(out / "images" / f"{i:05d}.png")))
        assert (row[:, w: w + GAP] == 255).all()


def test_translation_samples_refuses_mismatched_lists(tmp_path):
    with pytest.raises(ValueError, match="2 sources and 1 translations"):
        black = np.zeros((4, 4, 3), np.uint8)
        plot_translation_samples([black, black], [black], tmp_path / "x.png")
