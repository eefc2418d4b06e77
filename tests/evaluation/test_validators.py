"""Label-free validators against NumPy references, streaming, bounded SND memory, and their use as a
checkpoint monitor in a real (tiny) fit."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from domadapt.evaluation.reports import format_table
from domadapt.evaluation.validators import VALIDATORS, SoftNeighborhoodDensity, check_validator_names, list_validators
from domadapt.methods import MCD, SourceOnly
from tests.conftest import tiny_datamodule, tiny_net


# --- NumPy references, written from the formulas on rows (M, K) ----------------------------------
def _h(p: np.ndarray) -> np.ndarray:
    """Row entropies with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(1)


def np_entropy(rows, heads):
    return _h(rows).mean()


def np_info_max(rows, heads):
    return _h(rows.mean(0, keepdims=True))[0] - _h(rows).mean()


def np_snd(rows, heads, tau=0.05):
    q = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    ents = []
    for i in range(len(q)):
        s = np.delete(q @ q[i], i) / tau  # similarities to every other point
        a = np.exp(s - s.max())
        a /= a.sum()
        ents.append(_h(a[None])[0])
    return float(np.mean(ents))


def np_agreement(rows, heads):
    return float(np.mean(heads[0].argmax(1) == heads[1].argmax(1)))


REFERENCE = {"entropy": np_entropy, "info_max": np_info_max, "snd": np_snd, "agreement": np_agreement}


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, K) or (N, K, H, W) -> (N * H * W, K)."""
    return a if a.ndim == 2 else a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])


def random_probs(shape, seed):
    """Dirichlet rows of mixed sharpness, plus exact one-hot rows (0 log 0)."""
    rng = np.random.default_rng(seed)
    k = shape[1]
    rows = rng.dirichlet(np.full(k, 0.3), size=int(np.prod(shape)) // k)
    rows[::7] = np.eye(k)[rng.integers(0, k, len(rows[::7]))]
    if len(shape) == 2:
        return rows
    n, _, h, w = shape
    return rows.reshape(n, h, w, k).transpose(0, 3, 1, 2).copy()


SHAPES = {"classification": (37, 5), "segmentation": (3, 5, 6, 7)}


def _feed(v, probs, heads, splits):
    for idx in np.array_split(np.arange(len(probs)), splits):
        v.update(torch.from_numpy(probs[idx]), [torch.from_numpy(h[idx]) for h in heads])
    return float(v.compute())


def test_every_validator_has_a_reference_and_a_mode():
    assert set(list_validators()) == set(REFERENCE) == set(VALIDATORS)
    assert all(VALIDATORS[n].name == n and VALIDATORS[n].mode in ("min", "max") for n in list_validators())
    assert VALIDATORS["entropy"].mode == "min" and VALIDATORS["snd"].mode == "max"


@pytest.mark.parametrize("task", SHAPES)
@pytest.mark.parametrize("name", list_validators())
def test_validator_matches_numpy_reference(name, task):
    shape = SHAPES[task]
    probs = random_probs(shape, 0)
    heads = [random_probs(shape, 1), random_probs(shape, 2)]
    heads[1][: len(heads[1]) // 2] = heads[0][: len(heads[0]) // 2]  # agreement well away from 0 and 1
    expected = REFERENCE[name](_rows(probs), [_rows(h) for h in heads])
    v = VALIDATORS[name]()
    one_shot = _feed(v, probs, heads, 1)
    assert one_shot == pytest.approx(expected, rel=1e-6, abs=1e-9)  # SND keeps float32 rows
    v.reset()
    # decomposable scores stream exactly; SND too while every point fits in max_points (here 126-185 < 2048)
    assert _feed(v, probs, heads, 3) == pytest.approx(one_shot, rel=1e-9, abs=1e-9)


def test_snd_keeps_a_bounded_uniform_deterministic_subsample():
    k, batches = 4, [random_probs((1000, 4), s) for s in range(4)]
    v = SoftNeighborhoodDensity(max_points=200, seed=3)
    for b in batches:
        v.update(torch.from_numpy(b))
        assert v.points[0].shape == (200, k)  # memory stays bounded while streaming
    kept = v.points[0].double().numpy()
    every = np.concatenate(batches)
    # each kept row is an input row; every batch is represented about equally (uniform over all seen)
    origin = [int(np.argmin(np.abs(every - r).sum(1))) // 1000 for r in kept]
    assert np.abs(every[[int(np.argmin(np.abs(every - r).sum(1))) for r in kept]] - kept).max() < 1e-6
    assert all(20 <= origin.count(b) <= 80 for b in range(4)), [origin.count(b) for b in range(4)]
    value = float(v.compute())
    assert value == pytest.approx(np_snd(kept, None), rel=1e-6)
    v.reset()  # the generator is re-seeded: the same stream gives the same subsample
    for b in batches:
        v.update(torch.from_numpy(b))
    assert float(v.compute()) == value


def test_segmentation_snd_subsamples_pixels():
    probs = random_probs((2, 3, 40, 40), 5)  # 3,200 pixels
    v = SoftNeighborhoodDensity(max_points=300)
    v.update(torch.from_numpy(probs))
    kept = v.points[0].double().numpy()
    rows = _rows(probs)
    assert kept.shape == (300, 3)
    assert np.abs(rows[[int(np.argmin(np.abs(rows - r).sum(1))) for r in kept]] - kept).max() < 1e-6


def test_agreement_needs_two_heads():
    with pytest.raises(ValueError, match="agreement: expected two heads"):
        VALIDATORS["agreement"]().update(torch.rand(4, 3))


def test_unknown_names_are_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown validator\(s\) \['bogus'\].*'snd'") as e:
        check_validator_names(["entropy", "bogus"])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="SourceOnly.validators: unknown"):
        SourceOnly(net=tiny_net("classification"), validators=("entrop",))


# --- in a module ------------------------------------------------------------------------------
def _fit(module, task, tmp_path, callbacks=(), iterations=6):
    trainer = pl.Trainer(max_steps=iterations * module.optimizer_steps_per_batch,
                         val_check_interval=2,  # batches
                         logger=CSVLogger(tmp_path, name="logs"), callbacks=list(callbacks),
                         enable_checkpointing=bool(callbacks), enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", num_sanity_val_steps=0)
    dm = tiny_datamodule(task)
    trainer.fit(module, dm)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")))
    return trainer, dm, rows


def _target_probs(module, dm, heads=False):
    """Softmax of the target validation split, recomputed outside Lightning."""
    loader = dm.val_dataloader()[dm.val_names.index("target")]
    module.eval()
    out = []
    with torch.no_grad():
        for b in loader:
            y = b["mask"] if "mask" in b else b["label"]
            size = tuple(y.shape[-2:]) if y.dim() == 3 else None
            if heads:
                out.append(module.head_probabilities(b["image"], size))
            else:
                out.append(module.predict_probabilities(b["image"], size))
    return out


def test_unsupervised_score_is_a_checkpoint_monitor(tmp_path):
    module = SourceOnly(net=tiny_net("classification"), lr=0.05, validators=("entropy", "info_max", "snd"))
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/target/unsup/entropy", mode="min", save_top_k=1)
    trainer, dm, rows = _fit(module, "classification", tmp_path, [ckpt])
    logged = [float(r["val/target/unsup/entropy"]) for r in rows if r.get("val/target/unsup/entropy")]
    assert len(logged) == 3 and len(set(logged)) == 3  # one value per validation, and it moves
    assert float(ckpt.best_model_score) == pytest.approx(min(logged))
    assert ckpt.best_model_path.endswith(".ckpt")
    # the last value is the entropy of the *target* validation split under the final weights
    probs = torch.cat(_target_probs(module, dm)).double()
    assert logged[-1] == pytest.approx(float(torch.special.entr(probs).sum(1).mean()), rel=1e-5)
    keys = [k for k in rows[0] if "/unsup/" in k]
    assert sorted(keys) == [f"val/target/unsup/{n}" for n in ("entropy", "info_max", "snd")]
    assert not any(k.startswith("val/source/unsup") for k in rows[0])
    # reports show the scores as raw values (not percentages of a labelled metric)
    table = format_table([{k: 1.2345 for k in keys}], keys)
    assert "1.234" in table and "123.5" not in table


def test_agreement_is_logged_for_two_heads_only(tmp_path):
    module = MCD(net=tiny_net("segmentation"), num_k=1, lr=0.01, validators=("agreement", "entropy"))
    _, dm, rows = _fit(module, "segmentation", tmp_path / "mcd", iterations=2)
    agreement = [float(r["val/target/unsup/agreement"]) for r in rows if r.get("val/target/unsup/agreement")]
    assert len(agreement) == 1 and 0.0 <= agreement[0] <= 1.0
    pairs = _target_probs(module, dm, heads=True)
    a = torch.cat([h[0].argmax(1).flatten() for h in pairs])
    b = torch.cat([h[1].argmax(1).flatten() for h in pairs])
    assert agreement[0] == pytest.approx(float((a == b).double().mean()))

    single = SourceOnly(net=tiny_net("classification"), validators=("agreement", "entropy"))
    assert list(single.unsup_validators) == ["entropy"] and single.hparams.validators == ("agreement", "entropy")
