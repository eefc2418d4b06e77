"""ImagePool: CycleGAN history-buffer semantics, determinism under torch's seed, exact state round trip."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import torch

from domadapt.models.translation import ImagePool


def tagged(ids) -> torch.Tensor:
    """Images ``(N, 1, 2, 2)`` filled with their id, so they can be traced through the pool."""
    return torch.tensor(ids, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def ids_of(images) -> list[int]:
    return [int(im.flatten()[0]) for im in images]


def test_first_size_images_are_stored_and_returned_unchanged():
    pool = ImagePool(50)
    for start in range(0, 50, 10):
        batch = tagged(range(start, start + 10))
        assert torch.equal(pool.query(batch), batch)
    assert len(pool) == 50 and ids_of(pool.images) == list(range(50))


def test_full_pool_swaps_about_half_and_conserves_images():
    torch.manual_seed(0)
    pool = ImagePool(50)
    pool.query(tagged(range(50)))
    swapped = 0
    for new in range(1000, 1400):
        before = Counter(ids_of(pool.images))
        out = ids_of(pool.query(tagged([new])))[0]
        after = Counter(ids_of(pool.images))
        assert before + Counter([new]) == after + Counter([out])  # nothing created or lost
        if out != new:
            assert out in before and new in after and len(pool) == 50
            swapped += 1
    assert 0.4 < swapped / 400 < 0.6  # p = 0.5


def test_deterministic_given_torch_seed():
    def run(seed):
        torch.manual_seed(seed)
        pool = ImagePool(3)
        return [ids_of(pool.query(tagged([i, i + 100]))) for i in range(20)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_state_round_trip_continues_identically():
    torch.manual_seed(0)
    a = ImagePool(4)
    for i in range(10):
        a.query(tagged([i]))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = ImagePool(4)
    torch.manual_seed(123)  # the global RNG differs: the saved generator state must drive the draws
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert ids_of(b.images) == ids_of(a.images)
    outs_a = [ids_of(a.query(tagged([i]))) for i in range(100, 140)]
    outs_b = [ids_of(b.query(tagged([i]))) for i in range(100, 140)]
    assert outs_a == outs_b and any(o[0] < 100 for o in outs_a)


def test_state_round_trip_of_a_partly_filled_pool():
    a = ImagePool(5)
    a.query(tagged([7, 8]))
    b = ImagePool(5)
    b.load_state_dict(a.state_dict())
    assert ids_of(b.images) == [7, 8] and b._rng is None


def test_size_zero_is_a_passthrough():
    pool = ImagePool(0)
    x = tagged(range(4))
    assert pool.query(x) is x and len(pool) == 0
    with pytest.raises(ValueError, match="size"):
        ImagePool(-1)
