"""``domadapt data synth`` (domadapt.data.synth): synthetic trees in the official on-disk layouts that
``data check`` accepts and the adapters load with the right label mapping, byte for byte reproducible."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from adapter_trees import CS_TRAINID_OF_ID, SYNTHIA_TABLE, reference_lut
from domadapt.cli import main as cli_main
from domadapt.data import GTA5, Cityscapes, DomainNet, Synthia
from domadapt.data.catalog import DOMAINNET_DOMAINS, domainnet_classes
from domadapt.data.check import DatasetName
from domadapt.data.check import main as check_main
from domadapt.data.synth import SYNTH_NAMES, synth_size, synthesize
from domadapt.io import DataError

SCALE, N = 0.05, 2
# DATASETS.md §0, (W, H) at full size, times SCALE and rounded (transcribed, not imported).
SIZE = {"gta5": (96, 53), "cityscapes": (102, 51), "synthia": (64, 38)}
DN_WIDTH = 13  # round(256 * 0.05); heights 75-100 % of it, quickdraw square
CITIES = {"train": {"aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
                    "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar",
                    "zurich"},
          "val": {"frankfurt", "lindau", "munster"}}
LABELS = ("train", "val")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _segmentation(name: str, root: Path) -> list:
    if name == "cityscapes":
        return [Cityscapes(str(root), split=s) for s in LABELS]
    return [GTA5(str(root)) if name == "gta5" else Synthia(str(root))]


@pytest.fixture(scope="module", params=SYNTH_NAMES)
def tree(request, tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("synth") / request.param
    assert synthesize(request.param, root, images=N, scale=SCALE) == root
    return request.param, root


def test_every_checked_dataset_can_be_synthesized():
    assert set(SYNTH_NAMES) == set(typing.get_args(DatasetName))


def test_official_layout(tree):
    name, root = tree
    files = _files(root)
    if name == "gta5":
        assert files == [f"{d}/{i:05d}.png" for d in ("images", "labels") for i in range(1, N + 1)]
        with Image.open(root / "labels/00001.png") as label:
            assert label.mode == "P" and label.size == SIZE[name]
            assert label.getpalette()[7 * 3: 8 * 3] == [128, 64, 128]  # Cityscapes colour of id 7 (road)
        with Image.open(root / "images/00001.png") as image:
            assert image.mode == "RGB" and image.size == SIZE[name]
    elif name == "cityscapes":
        assert len(files) == 2 * 2 * N
        frames = set()
        for split in LABELS:
            images = [f for f in files if f.startswith(f"leftImg8bit/{split}/")]
            assert len(images) == N
            for f in images:
                m = re.fullmatch(rf"leftImg8bit/{split}/(\w+)/(\1_\d{{6}}_(\d{{6}}))_leftImg8bit\.png", f)
                assert m and m[1] in CITIES[split], f
                frames.add(m[3])
                assert f"gtFine/{split}/{m[1]}/{m[2]}_gtFine_labelIds.png" in files
                with Image.open(root / f"gtFine/{split}/{m[1]}/{m[2]}_gtFine_labelIds.png") as label:
                    assert label.mode == "L" and label.size == SIZE[name]
        assert frames - {"000019"}, "frame numbers must not all be 000019"
    elif name == "synthia":
        assert files == [f"{d}/{i:07d}.png" for d in ("GT/LABELS", "RGB") for i in range(N)]
        label = cv2.imread(str(root / "GT/LABELS/0000000.png"), cv2.IMREAD_UNCHANGED)  # BGR
        assert label.dtype == np.uint16 and label.shape == (SIZE[name][1], SIZE[name][0], 3)
        assert not label[..., 0].any() and label[..., 2].max() <= 22 and label[..., 2].any()
        assert label[..., 1].any()  # instance ids on cars / people
    else:
        classes, listed = domainnet_classes(), []
        for domain in DOMAINNET_DOMAINS:
            for split in ("train", "test"):
                lines = (root / f"{domain}_{split}.txt").read_text().splitlines(keepends=True)
                assert len(lines) == N and all(line.endswith("\n") for line in lines)
                for line in lines:
                    rel, label = line.split(" ")
                    label = int(label)
                    name_re = r"\d{16}\.png" if domain == "quickdraw" else rf"{domain}_{label + 1:03d}_\d{{6}}\.jpg"
                    assert re.fullmatch(rf"{domain}/{re.escape(classes[label])}/{name_re}", rel), line
                    with Image.open(root / rel) as image:
                        assert image.format == ("PNG" if domain == "quickdraw" else "JPEG")
                        assert image.width == DN_WIDTH and round(DN_WIDTH * 0.75) <= image.height <= DN_WIDTH
                    listed.append((rel, label))
        assert {label for _, label in listed} >= {0, 344}
        lists = [f"{d}_{s}.txt" for d in DOMAINNET_DOMAINS for s in ("train", "test")]
        assert files == sorted([rel for rel, _ in listed] + lists)  # nothing else (no temporary files)


def test_data_check_accepts_the_tree(tree, capsys):
    name, root = tree
    assert check_main([name, str(root)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    if name == "domainnet":
        assert f"split lists: 12, lines: {12 * N}" in out and "malformed or inconsistent lines: 0" in out
    else:
        n = 2 * N if name == "cityscapes" else N
        assert f"images: {n}, labels: {n}" in out and "unreadable files: 0" in out
    if name == "cityscapes":
        for split in LABELS:
            assert check_main([name, str(root), "--split", split]) == 0
            assert f"images: {N}, labels: {N}" in capsys.readouterr().out


def test_adapters_load_with_the_right_label_mapping(tree):
    name, root = tree
    if name == "domainnet":
        classes = domainnet_classes()
        for domain in DOMAINNET_DOMAINS:
            for split in ("train", "test"):
                ds = DomainNet(str(root), domain, split)
                assert len(ds) == N
                for i, line in enumerate((root / f"{domain}_{split}.txt").read_text().splitlines()):
                    sample = ds[i]
                    assert classes[int(sample["label"])] == line.split("/")[1]
                    c, h, w = sample["image"].shape
                    assert c == 3 and w == DN_WIDTH and (h == w if domain == "quickdraw" else 10 <= h <= w)
        return
    ref = reference_lut({k: v[0] for k, v in SYNTHIA_TABLE.items()} if name == "synthia" else CS_TRAINID_OF_ID)
    allowed = set(range(19)) - ({9, 14, 16} if name == "synthia" else set()) | {255}  # SYNTHIA: 16-class protocol
    w, h = SIZE[name]
    seen: set[int] = set()
    for ds in _segmentation(name, root):
        assert len(ds) == N
        for i, (_, label_path) in enumerate(ds.items):  # (iterating a dataset never stops: indices wrap)
            sample = ds[i]
            assert tuple(sample["image"].shape) == (3, h, w) and tuple(sample["mask"].shape) == (h, w)
            mask = sample["mask"].numpy()
            raw = (cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)[..., 2] if name == "synthia"
                   else np.asarray(Image.open(label_path)))  # read independently of the adapter
            np.testing.assert_array_equal(mask, ref[raw])
            seen |= set(np.unique(mask).tolist())
    assert seen <= allowed and 255 in seen and len(seen - {255}) >= 6, sorted(seen)


@pytest.mark.parametrize("name", ["gta5", "synthia"])
def test_images_follow_their_labels(tmp_path, name):
    """A nearest-class-colour classifier fitted on one image labels another: there is something to learn."""
    ds = _segmentation(name, synthesize(name, tmp_path, images=2, scale=0.1))[0]
    fit, test = ds[0], ds[1]
    pixels = {k: s["image"].permute(1, 2, 0).reshape(-1, 3).numpy() for k, s in (("fit", fit), ("test", test))}
    masks = {k: s["mask"].reshape(-1).numpy() for k, s in (("fit", fit), ("test", test))}
    classes = [c for c in np.unique(masks["fit"]) if c != 255]
    means = np.stack([pixels["fit"][masks["fit"] == c].mean(0) for c in classes])  # (K, 3)
    keep = np.isin(masks["test"], classes)
    nearest = np.asarray(classes)[((pixels["test"][keep, None] - means) ** 2).sum(-1).argmin(1)]
    assert (nearest == masks["test"][keep]).mean() > 0.9


@pytest.mark.parametrize("name", SYNTH_NAMES)
def test_same_arguments_same_bytes(tmp_path, name):
    a = synthesize(name, tmp_path / "a", images=N, scale=SCALE, seed=3)
    b = synthesize(name, tmp_path / "b", images=N, scale=SCALE, seed=3)
    c = synthesize(name, tmp_path / "c", images=N, scale=SCALE, seed=4)
    one = synthesize(name, tmp_path / "one", images=1, scale=SCALE, seed=3)
    files = _files(a)
    assert files == _files(b) and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    other = _files(c)  # another seed: other pictures (and other Cityscapes frame numbers, quickdraw ids)
    assert len(other) == len(files)
    assert [(a / f).read_bytes() for f in files] != [(c / f).read_bytes() for f in other]
    for f in _files(one):  # image i does not depend on how many images were asked for
        if not f.endswith(".txt"):
            assert (one / f).read_bytes() == (a / f).read_bytes(), f


def test_full_size():
    assert synth_size("gta5", 1, 1.0) == (1914, 1052) and synth_size("cityscapes", 1, 1.0) == (2048, 1024)
    assert synth_size("synthia", 1, 1.0) == (1280, 760) and synth_size("domainnet", 1, 1.0) == (256, 256)


def test_synthia_at_full_size(tmp_path):
    synthesize("synthia", tmp_path, images=1)
    ds = Synthia(str(tmp_path))
    sample = ds[0]
    assert len(ds) == 1 and tuple(sample["mask"].shape) == (760, 1280) and tuple(sample["image"].shape) == (3, 760, 1280)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "mnist"}, "unknown dataset 'mnist'; expected one of gta5, cityscapes, synthia, domainnet"),
    ({"images": 0}, "images: expected an integer >= 1, got 0"),
    ({"scale": 0.0}, "scale: expected a number > 0, got 0.0"),
    ({"scale": -1.0}, "scale: expected a number > 0"),
    ({"scale": 0.005}, "scale 0.005 is too small for gta5: images would be under 8 px a side"),
    ({"name": "domainnet", "scale": 0.03}, "too small for domainnet"),
    ({"scale": 10.0}, "too large for gta5"),
])
def test_bad_arguments_raise_one_line(tmp_path, kwargs, message):
    args = {"name": "gta5", "images": 1, "scale": 0.05, **kwargs}
    with pytest.raises(ValueError) as info:
        synthesize(args.pop("name"), tmp_path / "x", **args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()  # validated before anything is written


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="exists and is not a directory"):
        synthesize("gta5", tmp_path / "file", images=1, scale=SCALE)


@pytest.mark.parametrize("name", SYNTH_NAMES)
def test_cli_writes_the_tree(tmp_path, capsys, name):
    root = tmp_path / name
    code = cli_main(["data", "synth", name, str(root), "--images", "1", "--scale", str(SCALE), "--seed", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith(f"{name}: wrote ") and str(root) in out
    assert (f"{DN_WIDTH} px wide" if name == "domainnet" else "{}x{} (WxH)".format(*SIZE[name])) in out
    assert check_main([name, str(root)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["mnist", "{tmp}"], "invalid choice: 'mnist' (choose from 'gta5', 'cityscapes', 'synthia', 'domainnet')"),
    (["gta5", "{tmp}", "--images", "0"], "images: expected an integer >= 1"),
    (["gta5", "{tmp}", "--scale", "abc"], "argument --scale: invalid float value"),
    (["gta5"], "the following arguments are required: ROOT"),
])
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    code = cli_main(["data", "synth", *(a.format(tmp=tmp_path / "x") for a in argv)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("domadapt data synth: error: ") and message in err
    assert not (tmp_path / "x").exists()


def test_cli_help_and_data_usage(capsys):
    assert cli_main(["data", "synth", "--help"]) == 0
    assert "--scale S" in capsys.readouterr().out
    assert cli_main(["data", "--help"]) == 0
    assert "domadapt data synth" in capsys.readouterr().out
