"""Per-image class pixel counts (domadapt.data.class_pixels): exact counts from the label files alone, a cache hit on
the second build, a rebuild on a corrupt cache file or a changed label, in-memory and wrapped datasets."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from PIL import Image

from adapter_trees import CS_TRAINID_OF_ID, FIXTURES, make_tree, reference_lut, write_gta5_label
from domadapt.data import GTA5, ArrayDataset, ToyCity
from domadapt.data.class_pixels import cache_path, class_pixel_counts, count_classes, dataset_key, label_reader
from domadapt.data.resumable import SeededConcatDataset
from domadapt.data.style_transfer import HistogramTransfer, StyleTransferred

K = 19


@pytest.fixture()
def gta(tmp_path, monkeypatch):
    """A 5-image GTA5 tree, the cache in tmp_path, and a counter of the labels read."""
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    tree = make_tree("gta5", tmp_path / "gta5", n=5)
    reads = []
    original = GTA5.load_label

    def counting(self, path, image_hw):
        reads.append(path)
        return original(self, path, image_hw)

    monkeypatch.setattr(GTA5, "load_label", counting)

    def never(path):
        raise AssertionError(f"an image was decoded: {path}")

    monkeypatch.setattr("domadapt.data.paired.read_rgb", never)
    tree.reads = reads
    return tree


def reference(tree) -> np.ndarray:
    return np.stack([np.bincount(t[t < K], minlength=K)[:K] for t in (tree.ref[raw] for raw in tree.raws)])


def test_counts_are_exact_and_read_only_the_label_files(gta):
    counts = class_pixel_counts(gta.make(), K)
    np.testing.assert_array_equal(counts, reference(gta))
    assert counts.dtype == np.int64 and counts.shape == (5, K)
    assert len(gta.reads) == 5  # one streaming pass, no image decoded (read_rgb raises)
    np.testing.assert_array_equal(count_classes(np.array([[0, 255, 18], [19, 0, 3]], np.uint8), K)[[0, 3, 18]],
                                  [2, 1, 1])  # 19 and 255 are not classes


def test_second_build_hits_the_cache(gta):
    first = class_pixel_counts(gta.make(), K)
    assert len(gta.reads) == 5
    again = class_pixel_counts(gta.make(), K)  # a new dataset object on the same files: nothing is read
    assert len(gta.reads) == 5
    np.testing.assert_array_equal(again, first)
    ds = gta.make().setup()
    path = cache_path(ds, dataset_key(ds, label_reader(ds).files, K))
    assert path.is_file() and path.parent.name == "class-pixels-v1"
    class_pixel_counts(gta.make(), K, cache=False)
    assert len(gta.reads) == 10  # cache=False always counts


def test_a_corrupt_cache_file_is_rebuilt(gta):
    first = class_pixel_counts(gta.make(), K)
    ds = gta.make().setup()
    path = cache_path(ds, dataset_key(ds, label_reader(ds).files, K))
    path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        rebuilt = class_pixel_counts(gta.make(), K)
    np.testing.assert_array_equal(rebuilt, first)
    assert len(gta.reads) == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        class_pixel_counts(gta.make(), K)  # the rewritten file is read back silently
    assert len(gta.reads) == 10
    with path.open("wb") as f:
        np.savez(f, counts=first[:3], key=np.array("other"))  # readable, but made for another dataset
    with pytest.warns(UserWarning, match="do not match the dataset"):
        class_pixel_counts(gta.make(), K)
    assert len(gta.reads) == 15


def test_a_changed_label_or_file_list_is_a_miss(gta):
    class_pixel_counts(gta.make(), K)
    raw = gta.raws[2].copy()
    raw[:8] = 26  # car
    write_gta5_label(gta.labels[2], raw)
    os.utime(gta.labels[2], ns=(1, 1))  # a different mtime whatever the clock's resolution
    gta.raws[2] = raw
    counts = class_pixel_counts(gta.make(), K)
    assert len(gta.reads) == 10
    np.testing.assert_array_equal(counts, reference(gta))
    fewer = class_pixel_counts(gta.make(limit=3), K)
    assert len(gta.reads) == 13 and fewer.shape == (3, K)


def test_in_memory_wrapped_and_concatenated_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    src = ToyCity("source", "train", height=32, width=64, num_images=4).setup()
    expected = np.stack([np.bincount(m[m < K], minlength=K) for m in src.masks])
    np.testing.assert_array_equal(class_pixel_counts(src), expected)
    assert not (tmp_path / "cache" / "class-pixels-v1").exists()  # in memory: counted, never cached
    refs = ToyCity("target", "train", height=32, width=64, num_images=2)
    styled = StyleTransferred(src, refs, HistogramTransfer(), include_original=True)
    np.testing.assert_array_equal(class_pixel_counts(styled, K), np.concatenate([expected, expected]))
    both = SeededConcatDataset([src, styled.setup()])
    np.testing.assert_array_equal(class_pixel_counts(both, K), np.concatenate([expected] * 3))
    digits = ArrayDataset(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1]), ("a", "b"))
    with pytest.raises(ValueError, match="class_pixel_counts: arrays is a classification dataset"):
        class_pixel_counts(digits)


def test_a_gta_label_of_another_size_is_counted_as_the_loader_resizes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMADAPT_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's size-mismatch warning
        ds = GTA5(str(FIXTURES / "gta5")).setup()
    counts = class_pixel_counts(ds, K)
    label = reference_lut(CS_TRAINID_OF_ID)[np.asarray(Image.open(FIXTURES / "gta5/labels/00002.png")
                                                       .resize((95, 53), Image.NEAREST))]
    np.testing.assert_array_equal(counts[1], np.bincount(label[label < K], minlength=K))
    np.testing.assert_array_equal(counts[1], count_classes(ds.load_raw(1)[1], K))  # what training sees


def _count_on_two_ranks(rank: int, init: str, root: str, cache: str, out: str) -> None:
    import torch

    os.environ["DOMADAPT_CACHE"] = cache
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        reads = []
        original = GTA5.load_label
        GTA5.load_label = lambda self, path, hw: reads.append(path) or original(self, path, hw)
        counts = class_pixel_counts(GTA5(root), K)
        np.savez(f"{out}.{rank}.npz", counts=counts, reads=len(reads))
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_count_disjoint_shares_and_agree(gta, tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "rank")
    mp.spawn(_count_on_two_ranks, args=(f"file://{tmp_path / 'pg'}", str(gta.root), str(tmp_path / "ddp-cache"), out),
             nprocs=2, join=True)
    results = [np.load(f"{out}.{r}.npz") for r in (0, 1)]
    for r in results:
        np.testing.assert_array_equal(r["counts"], reference(gta))
    assert [int(r["reads"]) for r in results] == [3, 2]  # images 0, 2, 4 on rank 0; 1, 3 on rank 1
    assert len(list((tmp_path / "ddp-cache" / "class-pixels-v1").glob("*.npz"))) == 1  # written once, by rank 0
