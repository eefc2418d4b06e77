"""The network contract (DESIGN.md §3), checked for every entry of ``domadapt.models.MODELS``."""

from __future__ import annotations

import pytest
import torch
from small_models import SMALL, build, example_input, shared

from domadapt.models import MODELS
from domadapt.structures import NetOutput

NAMES = sorted(MODELS)


def test_every_listed_model_has_a_small_config():
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_forward_returns_netoutput_with_contract_shapes(name, train):
    model = shared(name).train(train)
    x = example_input(name)
    n, _, h, w = x.shape
    out = model(x)
    assert isinstance(out, NetOutput)
    assert model.task in ("classification", "segmentation")
    assert out.features.shape[:2] == (n, model.num_features)
    if model.task == "classification":
        assert out.logits.shape == (n, model.num_classes)
        assert out.features.dim() == 2
    else:
        assert out.logits.shape == (n, model.num_classes, h, w)
        assert out.features.dim() == 4
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.features).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr_mult_head", [10.0, 3.0])
def test_param_groups_cover_every_trainable_parameter_once(name, lr_mult_head):
    model = shared(name)
    groups = model.param_groups(lr_mult_head=lr_mult_head)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert [g["lr_mult"] for g in groups] == [1.0, lr_mult_head]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter appears twice"
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids) == trainable
    assert all(len(g["params"]) > 0 for g in groups)
    # Usable as torch optimizer groups as they are.
    torch.optim.SGD([{"params": g["params"], "lr": 0.1 * g["lr_mult"]} for g in groups], lr=0.1)


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_parameter_receives_a_gradient(name):
    # An unused registered parameter breaks DDP and would silently never train.
    model = build(name).train()
    out = model(example_input(name))
    (out.logits.square().mean() + out.features.square().mean()).backward()
    for g in model.param_groups():
        for p in g["params"]:
            assert p.grad is not None, f"{g['name']} parameter without gradient"


@pytest.mark.parametrize("name", NAMES)
def test_local_weights_round_trip(name, tmp_path):
    source = build(name, seed=0).eval()
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    loaded = build(name, seed=123, weights=str(path)).eval()  # another seed: only the file can match
    x = example_input(name)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, source(x).logits)
        assert torch.equal(loaded(x).features, source(x).features)


@pytest.mark.parametrize("name", NAMES)
def test_lightning_style_checkpoint_is_unwrapped(name, tmp_path):
    # A LightningModule holding the network as ``self.model`` saves keys "model.<key>" under "state_dict".
    source = build(name, seed=0).eval()
    path = tmp_path / "last.ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = build(name, seed=5, weights=str(path)).eval()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))
