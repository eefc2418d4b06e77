"""The .npz cache of embedded datasets: location, laziness, hits, corruption, concurrent builders."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from domadapt.data.embedded import CACHE_VERSION, EmbeddedDigits, ToyCity, cache_dir


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("DOMADAPT_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "domadapt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "domadapt"


def test_construction_does_no_work(fresh_cache):
    digits = EmbeddedDigits("digits-photo", "test")
    city = ToyCity("target", "val", num_images=3)
    assert not fresh_cache.exists() and digits.images is None and city.images is None
    assert len(city) == 3  # first use builds
    assert [p.name for p in _files(fresh_cache / f"embedded-v{CACHE_VERSION}")] == ["toycity_target_val_64x128_n3.npz"]


def test_cache_hit_returns_identical_arrays_without_rebuilding(fresh_cache):
    first = EmbeddedDigits("digits-inverted", "test").setup()
    (path,) = _files(fresh_cache / f"embedded-v{CACHE_VERSION}")
    stamp = path.stat().st_mtime_ns
    second = EmbeddedDigits("digits-inverted", "test").setup()
    assert path.stat().st_mtime_ns == stamp
    assert np.array_equal(first.images, second.images) and np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.source_index, second.source_index)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped_bytes", "wrong_arrays"])
def test_damaged_cache_file_is_rebuilt(fresh_cache, damage):
    reference = ToyCity("source", "val", num_images=4).setup()
    (path,) = _files(fresh_cache / f"embedded-v{CACHE_VERSION}")
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "flipped_bytes":  # same length, corrupt compressed data in the middle
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
        path.write_bytes(bytes(data))
    else:
        with open(path, "wb") as f:
            np.savez(f, images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.warns(UserWarning, match="rebuild"):
        rebuilt = ToyCity("source", "val", num_images=4).setup()
    assert np.array_equal(rebuilt.images, reference.images) and np.array_equal(rebuilt.masks, reference.masks)
    with np.load(path) as z:  # the file on disk is whole again
        assert np.array_equal(z["masks"], reference.masks)


def _build(queue) -> None:
    ds = ToyCity("target", "train", num_images=6).setup()
    queue.put(int(ds.images.astype(np.int64).sum()))


def test_two_processes_building_at_once(fresh_cache):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(queue,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    sums = [queue.get(timeout=5), queue.get(timeout=5)]
    assert sums[0] == sums[1]
    files = _files(fresh_cache / f"embedded-v{CACHE_VERSION}")
    assert [p.name for p in files] == ["toycity_target_train_64x128_n6.npz"]  # no temporary file left
    assert int(ToyCity("target", "train", num_images=6).setup().images.astype(np.int64).sum()) == sums[0]
