"""The one prediction path against a NumPy/PIL transcription of the released BDL evaluation and pseudo-labelling
scripts, on a real Cityscapes val frame (tests/fixtures/cityscapes, see SOURCES.md; the mmsegmentation copy is
256x128, so every size of the protocol is divided by 8: input 128x64 instead of 1024x512, labels 256x128 instead of
2048x1024, pseudo labels 128x64 instead of 1024x512 — the same factors).

Released code (liyunsheng13/BDL @a0e5821):

- ``data/cityscapes_dataset.py:30-38``: ``Image.open(...).convert('RGB').resize((1024, 512), Image.BICUBIC)``,
  float32, RGB -> BGR, minus ``IMG_MEAN`` (``data/__init__.py:8``), HWC -> CHW;
- ``evaluation.py:100-105``: ``softmax(model(image))`` (phase 'val': no upsampling inside the net,
  ``model/deeplab.py:182-183``), ``upsample(..., (1024, 2048), 'bilinear', align_corners=True)``, argmax;
- ``evaluation.py:34-64``: labelIds mapped to train ids (``dataset/cityscapes_list/info.json``), one confusion
  matrix ``fast_hist`` over all pixels of the 19 classes;
- ``SSL.py:35-40``: the same input, softmax, upsample to ``(512, 1024)``, argmax and max.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from domadapt.data import Augment, Cityscapes
from domadapt.data.transforms import CAFFE_MEAN, CAFFE_STD
from domadapt.methods import SourceOnly
from domadapt.models import DeepLabV2
from domadapt.pseudo.generate import LabelOptions, generate_pseudo_labels
from domadapt.pseudo.thresholds import GlobalThreshold
from tests.evaluation.test_eval_inference import upsample_align_corners

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cityscapes"
FRAME = "frankfurt/frankfurt_000000_000294"
INPUT, LABEL = (64, 128), (128, 256)  # (height, width): the protocol's 512x1024 and 1024x2048 over 8
IMG_MEAN = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float32)  # BGR, data/__init__.py:8
# dataset/cityscapes_list/info.json "label2train": the 19 evaluated ids; every other id -> 255
ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
               27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


@pytest.fixture(scope="module")
def frame_root(tmp_path_factory) -> Path:
    """A Cityscapes tree with the one real val frame that has ``labelIds``."""
    root = tmp_path_factory.mktemp("cityscapes")
    for sub, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
        dst = root / sub / "val" / FRAME.split("/")[0]
        dst.mkdir(parents=True)
        shutil.copy(FIXTURES / sub / "val" / f"{FRAME}_{suffix}.png", dst)
    return root


@pytest.fixture(scope="module")
def model() -> SourceOnly:
    """DeepLab-V2 (ResNet-50, Caffe input) with a sharp classifier, so that resampling choices change argmaxes."""
    torch.manual_seed(0)
    net = DeepLabV2(backbone="resnet50", num_classes=19, weights=None, input_channels="bgr")
    with torch.no_grad():
        for conv in net.classifier.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.mul_(300.0)
    return SourceOnly(net=net, validators=()).eval()


def released_probabilities(model: SourceOnly, image_file: Path, size: tuple[int, int]) -> np.ndarray:
    """``evaluation.py`` / ``SSL.py`` of the released code: ``(19, *size)`` probabilities."""
    image = Image.open(image_file).convert("RGB").resize(INPUT[::-1], Image.BICUBIC)
    image = np.asarray(image, np.float32)[:, :, ::-1] - IMG_MEAN  # BGR minus the mean
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    released_net = copy.deepcopy(model.net)  # the same weights, fed BGR as the released model is; no in-net upsample
    released_net.input_channels, released_net.upsample_logits = "rgb", False
    with torch.no_grad():
        logits = released_net(x).logits[0].double().numpy()  # (19, h/8, w/8)
    e = np.exp(logits - logits.max(0, keepdims=True))
    return upsample_align_corners(e / e.sum(0, keepdims=True), size)


def fast_hist(label: np.ndarray, pred: np.ndarray, n: int = 19) -> np.ndarray:
    """``evaluation.py:34-36``."""
    k = (label >= 0) & (label < n)
    return np.bincount(n * label[k].astype(int) + pred[k], minlength=n ** 2).reshape(n, n)


def eval_transform() -> Augment:
    """What the GTA5/SYNTHIA -> Cityscapes recipes evaluate with (Caffe normalisation, as the released input)."""
    return Augment(train=False, resize=INPUT, interpolation="cubic", full_resolution_mask=True,
                   mean=CAFFE_MEAN, std=CAFFE_STD)


def test_validation_scores_what_the_released_evaluation_scores(frame_root, model):
    data = Cityscapes(root=str(frame_root), split="val", transform=eval_transform())
    sample = data[0]
    assert tuple(sample["image"].shape) == (3, *INPUT) and tuple(sample["mask"].shape) == LABEL
    batch = {k: v[None] for k, v in sample.items()}
    with torch.no_grad():
        model.test_step(batch, 0)
        ours = model.predict_probabilities(batch["image"], LABEL)[0].numpy()
    released = released_probabilities(model, frame_root / "leftImg8bit" / "val" / f"{FRAME}_leftImg8bit.png", LABEL)
    np.testing.assert_allclose(ours, released, atol=2e-4)
    pred = released.argmax(0)
    assert len(np.unique(pred)) >= 4  # the sharp classifier predicts several classes
    ids = np.asarray(Image.open(frame_root / "gtFine" / "val" / f"{FRAME}_gtFine_labelIds.png"))
    label = np.full(ids.shape, 255, np.int64)
    for i, t in ID_TO_TRAIN.items():
        label[ids == i] = t
    hist = fast_hist(label, pred)
    confmat = model.metrics["test_target"].confmat.numpy()  # what validation and test accumulate
    assert confmat.sum() == hist.sum() == (label != 255).sum()
    assert np.abs(confmat - hist).sum() <= 2e-5 * hist.sum()  # at most a few pixels at float32 near-ties


def test_pseudo_labels_are_what_the_released_ssl_step_predicts(frame_root, model, tmp_path):
    data = Cityscapes(root=str(frame_root), split="val", transform=eval_transform())
    generate_pseudo_labels(model, data, tmp_path / "pl", GlobalThreshold(0.0), LabelOptions(output_size=INPUT),
                           progress=False, verbose=False)
    written = np.asarray(Image.open(next((tmp_path / "pl").rglob("*.png"))))
    released = released_probabilities(model, frame_root / "leftImg8bit" / "val" / f"{FRAME}_leftImg8bit.png",
                                      INPUT).argmax(0)
    assert written.shape == INPUT
    assert (written != released).mean() <= 2e-5
