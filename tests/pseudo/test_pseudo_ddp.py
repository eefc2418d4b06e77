"""Pseudo labels made by 2 DDP processes (gloo, CPU) equal those made by 1: same files, same manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from domadapt.pseudo.generate import LabelOptions, generate_pseudo_labels
from domadapt.pseudo.thresholds import ClassPercentile

from pseudo_fakes import FixedCls, FixedSeg, cls_dataset, seg_dataset


class Counting:
    """Mixin: counts the images the model forwards (``seen``)."""

    def forward(self, x):
        self.seen = getattr(self, "seen", 0) + x.shape[0]
        return super().forward(x)


class CountingSeg(Counting, FixedSeg):
    pass


class CountingCls(Counting, FixedCls):
    pass


CASES = {  # name -> (model, dataset, strategy, cache); odd sizes so the two shards differ in length
    "segmentation-disk": (CountingSeg, lambda: seg_dataset(n=7), lambda: ClassPercentile(0.5, cap=0.9), "disk"),
    "segmentation-recompute": (CountingSeg, lambda: seg_dataset(n=7), lambda: ClassPercentile(0.3), "recompute"),
    "classification": (CountingCls, lambda: cls_dataset(n=41), lambda: ClassPercentile(0.5), "disk"),
}


def _generate(case: str, out: Path) -> tuple[dict, int]:
    """The manifest and the number of images the model forwarded."""
    make_model, make_data, make_strategy, cache = CASES[case]
    model = make_model()
    manifest = generate_pseudo_labels(model, make_data(), out, make_strategy(), LabelOptions(batch_size=2, cache=cache),
                                      progress=False, verbose=False)
    return manifest, model.seen


def _worker(rank: int, case: str, out: str, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        manifest, seen = _generate(case, Path(out))
        assert (Path(out) / "manifest.json").is_file()  # finished when any process returns
        torch.save({"manifest": manifest, "seen": seen}, Path(out).parent / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _comparable(manifest: dict) -> dict:
    return {k: v for k, v in json.loads(json.dumps(manifest)).items() if k != "seconds"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_processes_write_the_same_pseudo_labels_as_one(tmp_path, case):
    single, seen = _generate(case, tmp_path / "one")
    mp.spawn(_worker, args=(case, str(tmp_path / "two" / "pl"), str(tmp_path / "store")), nprocs=2, join=True)
    two = tmp_path / "two" / "pl"
    assert _files(two) == _files(tmp_path / "one")  # label PNGs / labels.csv byte for byte, no leftovers
    assert len(_files(two)) >= (7 if case.startswith("segmentation") else 1)
    saved = json.loads((two / "manifest.json").read_text())
    assert _comparable(saved) == _comparable(single)
    ranks = [torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for r in ranks:  # every process returns the same manifest ...
        assert _comparable(r["manifest"]) == _comparable(single)
    # ... having predicted only its own shard: no image twice, none dropped
    n = single["images"]["count"]
    passes = seen // n  # 2 with cache="recompute"
    assert sorted(r["seen"] for r in ranks) == [passes * (n // 2), passes * (n - n // 2)]
    kept = single["kept_ratio"]["overall"]
    assert 0 < kept < 1  # thresholds that both keep and drop: a wrong shard or sum would show
