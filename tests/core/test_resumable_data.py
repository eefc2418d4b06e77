"""The seeded, resumable training order (domadapt.data.resumable): same seed -> same batches and augmentations,
ranks share one order, a resumed sampler continues exactly where the killed one stopped, seeds survive
concatenation and pickling (DataLoader workers)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from domadapt.data.resumable import ResumableRandomSampler, SeededConcatDataset, SeededIndex, resume_loader
from domadapt.data.transforms import Augment
from tests.conftest import random_domain, tiny_datamodule


def test_order_is_a_function_of_seed_epoch_and_pass():
    a, b = ResumableRandomSampler(20, seed=1), ResumableRandomSampler(20, seed=1)
    first = list(a)
    assert first == list(b) and sorted(first) == list(range(20))
    assert list(a) != first  # second pass of epoch 0
    a.set_epoch(3), b.set_epoch(3)
    assert list(a) == list(b) != first
    assert list(ResumableRandomSampler(20, seed=2)) != first


def test_ranks_share_one_order_without_overlap():
    whole = list(ResumableRandomSampler(10, seed=0, num_replicas=1, rank=0))
    ranks = [list(ResumableRandomSampler(10, seed=0, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks)  # 10 padded to 12 like DistributedSampler
    interleaved = [ranks[j % 3][j // 3] for j in range(12)]
    assert interleaved[:10] == whole and interleaved[10:] == whole[:2]


def test_resume_continues_the_pass_and_position():
    s = ResumableRandomSampler(12, seed=5)
    s.set_epoch(2)
    passes = [list(s) for _ in range(3)]
    r = ResumableRandomSampler(12, seed=5)
    r.resume(2, passes=1, skip=7)
    assert list(r) == passes[1][7:] and list(r) == passes[2]
    assert [i.seed for i in r.__iter__()] != [i.seed for i in passes[0]]


def test_resume_loader_counts_dropped_samples():
    ds = random_domain("classification", 10, 0)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=ResumableRandomSampler(10, seed=0), drop_last=True)
    full = [b["index"].tolist() for _ in range(2) for b in loader]  # 3 batches a pass, the 10th sample dropped
    loader.sampler.set_epoch(1), loader.sampler.set_epoch(0)  # back to a fresh epoch 0
    resume_loader(loader, epoch=0, batches=4)  # 1 pass + 1 batch done
    assert [b["index"].tolist() for b in loader] == full[4:]


def test_seed_survives_pickling_and_concatenation():
    i = SeededIndex(7, 123)
    j = pickle.loads(pickle.dumps(i))
    assert (int(j), j.seed, type(j)) == (7, 123, SeededIndex)

    class Probe(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, idx):
            return int(idx), getattr(idx, "seed", None)

    cat = SeededConcatDataset([Probe(), Probe()])
    assert cat[SeededIndex(6, 9)] == (1, 9) and cat[6] == (1, None)


def test_augment_reseed_makes_the_random_choices_repeatable():
    aug = Augment(hflip=0.5, color_jitter=0.4, crop=(24, 24), mean=(0, 0, 0), std=(1, 1, 1))
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    outs = []
    for _ in range(2):
        draws = []
        for seed in range(6):
            aug.reseed(seed)
            draws.append(aug(image=image)["image"])
        outs.append(torch.stack(draws))
    assert torch.equal(outs[0], outs[1])
    assert not all(torch.equal(outs[0][0], x) for x in outs[0][1:])  # different seeds, different augmentations


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_same_seed_gives_the_same_augmented_batches(task):
    def batches(seed):
        dm = tiny_datamodule(task)
        dm.train_transform.hflip = 0.5
        dm.train_transform.__setstate__(dm.train_transform.__getstate__())  # rebuild the pipeline with the flip
        dm.seed = seed
        return [(b["source"]["image"], b["target"]["image"]) for b, *_ in dm.train_dataloader()]

    a, b, c = batches(0), batches(0), batches(1)
    assert all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    assert not all(torch.equal(x, y) for pa, pc in zip(a, c) for x, y in zip(pa, pc))
