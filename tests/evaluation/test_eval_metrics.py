"""Confusion-matrix metrics against NumPy / scikit-learn references, and exactness under DDP."""

from __future__ import annotations

import json
import socket
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from domadapt.data.catalog import CS19_CLASSES, PROTOCOLS
from domadapt.evaluation.metrics import (
    ConfusionMatrix,
    MetricSet,
    accuracy,
    iou_per_class,
    mean_class_accuracy,
    miou,
    pixel_accuracy,
)

K = 19


def _seg_data(seed: int, n: int = 4, h: int = 21, w: int = 26):
    """Random masks with ~15% ignore pixels; classes 3 (wall) and 16 (train) never occur nor get
    predicted (NaN IoU); class 9 (terrain) is predicted but never in the ground truth (IoU 0)."""
    rng = np.random.default_rng(seed)
    gt_classes = [c for c in range(K) if c not in (3, 9, 16)]
    pred_classes = [c for c in range(K) if c not in (3, 16)]
    target = rng.choice(gt_classes, size=(n, h, w))
    target[rng.random((n, h, w)) < 0.15] = 255
    preds = np.where(rng.random((n, h, w)) < 0.6, target, rng.choice(pred_classes, size=(n, h, w)))
    preds[preds == 255] = 0  # an ignored pixel's prediction is arbitrary
    return preds, target


def _np_confmat(preds: np.ndarray, target: np.ndarray, k: int = K) -> np.ndarray:
    ref = np.zeros((k, k), np.int64)
    valid = target != 255
    np.add.at(ref, (target[valid], preds[valid]), 1)
    return ref


def _np_iou(preds: np.ndarray, target: np.ndarray, k: int = K) -> np.ndarray:
    """IoU straight from the pixels: |pred==c & gt==c| / |(pred==c | gt==c)| over valid pixels."""
    valid = target != 255
    p, t = preds[valid], target[valid]
    out = np.full(k, np.nan)
    for c in range(k):
        union = np.sum((p == c) | (t == c))
        if union:
            out[c] = np.sum((p == c) & (t == c)) / union
    return out


def test_confusion_matrix_matches_numpy_reference():
    preds, target = _seg_data(0)
    m = ConfusionMatrix(K)
    m.update(torch.from_numpy(preds), torch.from_numpy(target))
    cm = m.compute()
    assert cm.dtype == torch.int64 and cm.shape == (K, K)
    np.testing.assert_array_equal(cm.numpy(), _np_confmat(preds, target))
    assert int(cm.sum()) == int((target != 255).sum())


def test_segmentation_metric_set_matches_pixel_reference():
    preds, target = _seg_data(1)
    m = MetricSet("segmentation", K, CS19_CLASSES)
    for i in range(len(preds)):  # several updates accumulate into one matrix
        m.update(torch.from_numpy(preds[i : i + 1]), torch.from_numpy(target[i : i + 1]))
    out = m.compute()
    ref = _np_iou(preds, target)
    assert np.isnan(ref[[3, 16]]).all() and ref[9] == 0  # the data really has NaN / zero classes
    assert out["miou"] == pytest.approx(np.nanmean(ref))
    assert out["miou16"] == pytest.approx(np.nanmean(ref[list(PROTOCOLS["16"])]))
    assert out["miou13"] == pytest.approx(np.nanmean(ref[list(PROTOCOLS["13"])]))
    valid = target != 255
    assert out["pixel_acc"] == pytest.approx(np.mean(preds[valid] == target[valid]))
    for c, name in enumerate(CS19_CLASSES):
        v = out[f"iou/{name}"]
        assert (np.isnan(v) and np.isnan(ref[c])) or v == pytest.approx(ref[c])


@pytest.mark.parametrize("as_numpy", [False, True])
def test_pure_functions_accept_tensor_and_ndarray(as_numpy):
    preds, target = _seg_data(2)
    cm = _np_confmat(preds, target)
    cm_in = cm if as_numpy else torch.from_numpy(cm)
    iou = iou_per_class(cm_in)
    assert isinstance(iou, np.ndarray if as_numpy else torch.Tensor)
    np.testing.assert_allclose(np.asarray(iou), _np_iou(preds, target), equal_nan=True)
    assert miou(cm_in, PROTOCOLS["13"]) == pytest.approx(np.nanmean(_np_iou(preds, target)[list(PROTOCOLS["13"])]))
    assert pixel_accuracy(cm_in) == accuracy(cm_in) == pytest.approx(np.trace(cm) / cm.sum())


def test_empty_and_bad_matrices():
    empty = np.zeros((3, 3), np.int64)
    assert np.isnan(iou_per_class(empty)).all()
    assert np.isnan(miou(empty)) and np.isnan(pixel_accuracy(empty)) and np.isnan(mean_class_accuracy(empty))
    with pytest.raises(ValueError, match="square"):
        miou(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[7\]"):
        miou(np.eye(3), classes=[0, 7])


def test_classification_against_sklearn():
    rng = np.random.default_rng(3)
    k = 7
    y_true = rng.choice([0, 1, 2, 4, 5, 6], size=300)  # class 3 never in the ground truth
    y_pred = np.where(rng.random(300) < 0.5, y_true, rng.integers(0, k, size=300))  # ... but predicted
    assert (y_pred == 3).any()
    m = MetricSet("classification", k)
    m.update(torch.from_numpy(y_pred[:100]), torch.from_numpy(y_true[:100]))
    m.update(torch.from_numpy(y_pred[100:]), torch.from_numpy(y_true[100:]))
    np.testing.assert_array_equal(m.confmat.numpy(), confusion_matrix(y_true, y_pred, labels=range(k)))
    out = m.compute()
    assert set(out) == {"acc", "mean_class_acc"}
    assert out["acc"] == pytest.approx(accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the predicted-only class 3
        assert out["mean_class_acc"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("shape", [(40,), (2, 9, 11)])
def test_logits_equal_their_argmax_indices(shape):
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 5, shape, generator=g)
    logits = torch.randn(shape[0], 5, *shape[1:], generator=g)  # (N, K) / (N, K, H, W)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert torch.equal(a.compute(), b.compute()) and int(a.compute().sum()) == target.numel()


@pytest.mark.parametrize("bad", [19, 37, -1])
def test_out_of_range_target_names_the_value(bad):
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[1, 2, 3] = bad
    target[0, 0, 0] = 255  # ignore is fine
    with pytest.raises(ValueError, match=rf"target: class id {bad}\b"):
        ConfusionMatrix(K).update(torch.zeros_like(target), target)


def test_bad_predictions_and_shapes_raise():
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="preds: class id 19"):
        ConfusionMatrix(K).update(torch.full_like(t, 19), t)
    with pytest.raises(ValueError, match="does not match"):
        ConfusionMatrix(K).update(torch.zeros(2, 4, 5, dtype=torch.long), t)
    with pytest.raises(ValueError, match="floating point"):
        ConfusionMatrix(K).update(torch.zeros(2, 4, 4), t)
    with pytest.raises(ValueError, match="18 classes"):
        ConfusionMatrix(K).update(torch.zeros(2, 18, 4, 4), t)


def test_metric_set_arguments():
    m = MetricSet("segmentation", 5)  # protocols only for 19-class matrices
    m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    assert set(m.compute()) == {"miou", "pixel_acc"} | {f"iou/class_{i}" for i in range(5)}
    with pytest.raises(ValueError, match="19-class"):
        MetricSet("segmentation", 5, protocols=("16",))
    with pytest.raises(ValueError, match="unknown protocol"):
        MetricSet("segmentation", K, protocols=("15",))
    with pytest.raises(ValueError, match="class_names"):
        MetricSet("segmentation", K, class_names=("a", "b"))


def test_sharded_states_merge_exactly():
    """Two shards (two DDP ranks) summed == one metric fed everything."""
    preds, target = _seg_data(5, n=6)
    full, a, b = (MetricSet("segmentation", K, CS19_CLASSES) for _ in range(3))
    full.update(torch.from_numpy(preds), torch.from_numpy(target))
    a.update(torch.from_numpy(preds[:2]), torch.from_numpy(target[:2]))
    b.update(torch.from_numpy(preds[2:]), torch.from_numpy(target[2:]))
    assert torch.equal(a.confmat + b.confmat, full.confmat)  # what dist_reduce_fx="sum" does
    a.merge_state(b)
    assert torch.equal(a.confmat, full.confmat)
    assert json.dumps(a.compute()) == json.dumps(full.compute())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, out_path: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        preds, target = _seg_data(6, n=6)
        shard = slice(0, 1) if rank == 0 else slice(1, 6)  # unequal shards
        m = MetricSet("segmentation", K, CS19_CLASSES)
        m.update(torch.from_numpy(preds[shard]), torch.from_numpy(target[shard]))
        out = m.compute()  # synchronises (sums) the confusion matrices across ranks
        m.sync()
        confmat = m.confmat.tolist()
        if rank == 0:
            with open(out_path, "w") as f:
                json.dump({"metrics": out, "confmat": confmat}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_real_ddp_sync_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    out_path = tmp_path / "rank0.json"
    mp.spawn(_ddp_worker, args=(_free_port(), str(out_path)), nprocs=2, join=True)
    preds, target = _seg_data(6, n=6)
    single = MetricSet("segmentation", K, CS19_CLASSES)
    single.update(torch.from_numpy(preds), torch.from_numpy(target))
    got = json.loads(out_path.read_text())
    assert got["confmat"] == single.confmat.tolist()
    assert json.dumps(got["metrics"]) == json.dumps(single.compute())  # string compare: NaN-safe
