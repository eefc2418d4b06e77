"""Dynamic backbones: static torchvision weights load into W0, shape errors name the key, groups, switches."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from domadapt.layers.dynamic_conv import DynamicConv2d, dynamic_parameters
from domadapt.models import DigitsNet, DynamicDigitsNet, DynamicResNet


def dynamic_convs(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, DynamicConv2d)]


@pytest.fixture(scope="module")
def static_resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    static = torchvision.models.resnet18(weights=None)
    for m in static.modules():  # non-trivial BN statistics so that W0 and BN both have to load
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("w") / "resnet18-static.pth"
    torch.save(static.state_dict(), path)
    return static.eval(), path


def test_static_torchvision_weights_load_into_w0_with_identical_outputs(static_resnet18_file):
    static, path = static_resnet18_file
    torch.manual_seed(123)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # attention / residual keys are missing from a static file, as expected
        dyn = DynamicResNet("resnet18", num_classes=5, weights=str(path)).eval()
    assert len(dynamic_convs(dyn)) == 16  # 8 basic blocks x 2 convs
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = torch.flatten(torch.nn.Sequential(*list(static.children())[:-1])(x), 1)
        torch.testing.assert_close(dyn(x).features, expected, atol=0, rtol=0)
    w0 = dyn.backbone.layer2[0].conv2.weight
    assert torch.equal(w0, static.layer2[0].conv2.weight)


def test_dynamic_checkpoint_round_trips_and_counts_as_pretrained(tmp_path):
    torch.manual_seed(0)
    src = DynamicResNet("resnet18", num_classes=5, dynamic_stages=(3, 4))
    for name in dynamic_convs(src):
        src.get_submodule(name).reset_residual(zero=False)
    path = tmp_path / "dynamic.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, path)
    loaded = DynamicResNet("resnet18", num_classes=5, dynamic_stages=(3, 4), weights=str(path))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), loaded.state_dict().values()))
    groups = {g["name"]: {id(p) for p in g["params"]} for g in loaded.param_groups()}
    assert {id(p) for p in dynamic_parameters(loaded)} <= groups["backbone"]  # pretrained -> 1x


def test_mismatched_shape_is_an_error_naming_the_key(static_resnet18_file, tmp_path):
    _, path = static_resnet18_file
    state = torch.load(path, weights_only=True)
    state["layer3.1.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    key = r"'backbone\.layer3\.1\.conv2\.weight'"
    with pytest.raises(ValueError, match=r"shape mismatch for " + key + r".*\(256, 256, 1, 1\)"):
        DynamicResNet("resnet18", num_classes=5, weights=str(bad))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_param_groups_cover_everything_once_new_parameters_at_head_rate(arch):
    model = DynamicResNet(arch, num_classes=4, bottleneck_dim=8, dynamic_stages=(2, 4))
    groups = model.param_groups(lr_mult_head=10.0)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    head = {id(p) for p in groups[1]["params"]}
    new = {id(p) for p in dynamic_parameters(model)} | {id(p) for m in (model.bottleneck, model.head)
                                                       for p in m.parameters()}
    assert head == new and groups[1]["lr_mult"] == 10.0 and groups[0]["lr_mult"] == 1.0
    # Only the 3x3 convs of the chosen stages are dynamic (bottleneck conv2 for ResNet-50).
    names = dynamic_convs(model)
    assert names and all(n.split(".")[1] in ("layer2", "layer4") for n in names)
    if arch == "resnet50":
        assert all(n.endswith("conv2") for n in names) and len(names) == 4 + 3


def test_static_switch_gives_the_plain_network():
    torch.manual_seed(0)
    static = DynamicResNet("resnet18", num_classes=3, dynamic=False)
    assert not dynamic_convs(static)
    assert sum(p.numel() for p in static.parameters()) == sum(
        p.numel() for p in torchvision.models.resnet18(weights=None, num_classes=3).parameters())


def test_dynamic_digits_net_equals_digits_net_at_init_and_static_switch(tmp_path):
    torch.manual_seed(0)
    plain = DigitsNet(num_classes=10).eval()
    path = tmp_path / "digits.pth"
    torch.save(plain.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn = DynamicDigitsNet(num_classes=10, weights=str(path)).eval()
    assert dynamic_convs(dyn) == ["conv.0", "conv.4"]
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dyn(x).logits, plain(x).logits, atol=1e-6, rtol=1e-6)
    static = DynamicDigitsNet(num_classes=10, dynamic=False)
    assert not dynamic_convs(static)
    assert [n for n, _ in static.named_parameters()] == [n for n, _ in plain.named_parameters()]
