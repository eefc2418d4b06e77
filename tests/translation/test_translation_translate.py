"""translate_dataset: names, untouched labels, manifest, resume by journal, temp files, readers, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from domadapt.data import GTA5, Synthia
from domadapt.data.base import ArrayDataset
from domadapt.data.translated import TranslatedDataset
from domadapt.io import DataError
from domadapt.methods.translation import Translation
from domadapt.models.translation import ResnetGenerator
from domadapt.fingerprint import file_sha256
from domadapt.pipeline.translate import translate_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIZE = (24, 40)  # (H, W) translation resolution: fast on CPU


class Counting:
    """Counts the images a generator translates (a forward hook: the state dict, hence the hash, is unchanged)."""

    def __init__(self, net: nn.Module) -> None:
        self.net, self.count = net, 0
        net.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.count += args[0].shape[0]


def generator() -> nn.Module:
    torch.manual_seed(0)
    return ResnetGenerator(ngf=4, n_blocks=1)


@pytest.fixture
def gta5(tmp_path) -> Path:
    shutil.copytree(FIXTURES / "gta5", tmp_path / "gta5")  # real-format files: 1914x1052 and 95x53 frames
    return tmp_path / "gta5"


def expected_translation(g: nn.Module, image: np.ndarray, size=SIZE) -> np.ndarray:
    """The documented conversion by hand: bicubic resize, x/127.5 - 1, G, (y + 1) * 127.5 rounded."""
    small = np.asarray(Image.fromarray(image).resize(size[::-1], Image.BICUBIC)).astype(np.float32)
    with torch.no_grad():
        y = g(torch.from_numpy(small).permute(2, 0, 1)[None] / 127.5 - 1)[0]
    return ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def test_gta5_layout_same_names_untouched_labels_manifest_and_readers(gta5, tmp_path):
    g, out = generator(), tmp_path / "out"
    src = GTA5(str(gta5))
    manifest_path = translate_dataset(g, src, out, size=SIZE, batch_size=2, show_progress=False)
    assert manifest_path == out / "manifest.json"
    names = sorted(p.name for p in (gta5 / "images").iterdir())
    assert sorted(p.name for p in (out / "images").iterdir()) == names
    for name in names:
        assert (out / "labels" / name).read_bytes() == (gta5 / "labels" / name).read_bytes()
        image = np.asarray(Image.open(out / "images" / name))
        assert image.shape == (*SIZE, 3)
        assert np.array_equal(image, expected_translation(g, np.asarray(Image.open(gta5 / "images" / name))))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["num_images"] == 2 and manifest["layout"] == "gta5" and manifest["size"] == list(SIZE)
    assert manifest["source"]["description"] == src.describe() and len(manifest["generator"]["sha256"]) == 64
    reread = TranslatedDataset(str(out))
    with pytest.warns(UserWarning, match="resized nearest-neighbour"):
        by_adapter = GTA5(str(out)).setup()
    assert len(reread) == len(by_adapter) == 2
    for i in range(2):
        a, b = reread[i], by_adapter[i]
        assert a["image"].shape == (3, *SIZE) and torch.equal(a["mask"], b["mask"])
    # The label is the source label resized nearest-neighbour: same train ids as the original adapter's.
    orig = GTA5(str(gta5)).setup().load_raw(1)[1]
    assert set(np.unique(reread.load_raw(1)[1])) <= set(np.unique(orig))


def test_resume_regenerates_only_what_is_not_done(gta5, tmp_path):
    out = tmp_path / "out"
    translate_dataset(generator(), GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    stamp = (out / "images" / "00002.png").stat().st_mtime_ns
    first = (out / "images" / "00001.png").read_bytes()

    (out / "images" / "00001.png").unlink()  # a deleted output
    g = Counting(generator())
    translate_dataset(g.net, GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    assert g.count == 1 and (out / "images" / "00001.png").read_bytes() == first
    assert (out / "images" / "00002.png").stat().st_mtime_ns == stamp

    g = Counting(generator())
    translate_dataset(g.net, GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    assert g.count == 0  # everything done


def test_killed_run_leftovers_are_never_taken_as_done(gta5, tmp_path):
    out = tmp_path / "out"
    translate_dataset(generator(), GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    journal = out / "progress.jsonl"
    lines = journal.read_text().splitlines()
    # Simulate a run killed while writing 00002: its record never made it (torn line), a file under the
    # final name that is not what the journal recorded, and a temporary file of the atomic writer.
    journal.write_text("\n".join(line for line in lines if "00002" not in line) + '\n{"image": "images/000')
    (out / "images" / "00002.png").write_bytes(b"\x89PNG garbage")
    (out / "images" / ".00002.png.k1ll3d.tmp").write_bytes(b"half")
    (out / "manifest.json").unlink()
    with pytest.raises(DataError, match="manifest.json: not found"):
        TranslatedDataset(str(out)).setup()
    g = Counting(generator())
    translate_dataset(g.net, GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    assert g.count == 1
    assert np.asarray(Image.open(out / "images" / "00002.png")).shape == (*SIZE, 3)
    ds = TranslatedDataset(str(out)).setup()
    assert len(ds) == 2 and all(".tmp" not in str(p) for pair in ds.items for p in pair)

    # A recorded file whose size changed (truncated afterwards) is redone as well.
    path = out / "images" / "00001.png"
    path.write_bytes(path.read_bytes()[:20])
    g = Counting(generator())
    translate_dataset(g.net, GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    assert g.count == 1


def test_missing_file_is_a_one_line_error_when_read(gta5, tmp_path):
    out = tmp_path / "out"
    translate_dataset(generator(), GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    (out / "labels" / "00002.png").unlink()
    with pytest.raises(DataError, match=r"labels/00002\.png: missing from the translated dataset") as e:
        TranslatedDataset(str(out)).setup()
    assert "\n" not in str(e.value)


def test_another_generator_into_the_same_folder_is_refused(gta5, tmp_path):
    out = tmp_path / "out"
    translate_dataset(generator(), GTA5(str(gta5)), out, size=SIZE, show_progress=False)
    torch.manual_seed(1)
    with pytest.raises(ValueError, match="holds a translation with other settings"):
        translate_dataset(ResnetGenerator(ngf=4, n_blocks=1), GTA5(str(gta5)), out, size=SIZE, show_progress=False)


def test_synthia_layout_keeps_16_bit_labels(tmp_path):
    shutil.copytree(FIXTURES / "synthia" / "RAND_CITYSCAPES", tmp_path / "syn")
    src = Synthia(str(tmp_path / "syn"), label_map="16")
    out = tmp_path / "out"
    translate_dataset(generator(), src, out, size=None, show_progress=False)  # native size: labels align
    for name in ("0000000.png", "0000001.png"):
        assert (out / "GT/LABELS" / name).read_bytes() == (tmp_path / "syn/GT/LABELS" / name).read_bytes()
    reread = TranslatedDataset(str(out))
    assert len(reread) == 2 and reread.setup().classes == src.setup().classes
    for i in range(2):
        assert np.array_equal(reread.load_raw(i)[1], src.load_raw(i)[1])
    assert np.asarray(Image.open(out / "RGB/0000001.png")).shape[:2] == (38, 64)
    assert len(Synthia(str(out))) == 2


def test_generic_layout_for_arrays_writes_train_id_labels(tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 4, (3, 16, 24)).astype(np.uint8)
    masks[:, 0] = 255
    images = rng.integers(0, 256, (3, 16, 24, 3)).astype(np.uint8)
    src = ArrayDataset(images, masks, ("a", "b", "c", "d"), task="segmentation", name="toy")
    out = tmp_path / "out"
    translate_dataset(generator(), src, out, show_progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    ds = TranslatedDataset(str(out)).setup()
    assert ds.classes == ("a", "b", "c", "d")
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(out / "labels" / f"{i:05d}.png")), masks[i])
        assert np.array_equal(ds.load_raw(i)[1], masks[i])
        assert np.array_equal(ds.load_raw(i)[0], expected_translation(generator(), images[i], size=(16, 24)))


def test_generic_layout_for_toycity(tmp_path, monkeypatch):
    from domadapt.data import ToyCity

    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    src = ToyCity("source", "val", height=32, width=64, num_images=3)
    translate_dataset(generator(), src, tmp_path / "out", layout="auto", show_progress=False)
    ds = TranslatedDataset(str(tmp_path / "out")).setup()
    assert ds.manifest["layout"] == "generic" and ds.classes == src.classes
    for i in range(3):
        assert np.array_equal(ds.load_raw(i)[1], src.load_raw(i)[1])


def test_lightning_checkpoint_of_translation_is_a_generator_source(gta5, tmp_path):
    torch.manual_seed(0)
    module = Translation(ngf=4, n_blocks=1, ndf=4, n_layers=1, pool_size=2)
    data = [{"source": {"image": torch.rand(3, 16, 16) * 2 - 1}, "target": {"image": torch.rand(3, 16, 16) * 2 - 1}}]
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, DataLoader(data, batch_size=1))
    ckpt = tmp_path / "translation.ckpt"
    trainer.save_checkpoint(ckpt)
    for direction, net in (("a2b", module.g_a), ("b2a", module.g_b)):
        out = tmp_path / direction
        manifest = json.loads(translate_dataset(ckpt, GTA5(str(gta5)), out, size=SIZE, direction=direction,
                                                show_progress=False).read_text())
        assert manifest["generator"]["sha256"] == file_sha256(ckpt) and manifest["generator"]["direction"] == direction
        image = np.asarray(Image.open(gta5 / "images" / "00002.png"))
        assert np.array_equal(np.asarray(Image.open(out / "images" / "00002.png")), expected_translation(net, image))


def test_bad_inputs():
    src = ArrayDataset(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1), ("a",), name="cls")
    with pytest.raises(ValueError, match="labelled segmentation dataset"):
        translate_dataset(generator(), src, "/nonexistent", show_progress=False)
    seg = ArrayDataset(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8), np.uint8), ("a",), task="segmentation")
    with pytest.raises(ValueError, match="layout 'gta5' copies label files"):
        translate_dataset(generator(), seg, "/nonexistent", layout="gta5", show_progress=False)
    with pytest.raises(FileNotFoundError, match="generator checkpoint not found"):
        translate_dataset("/no/such.ckpt", seg, "/nonexistent", show_progress=False)
