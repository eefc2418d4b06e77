"""The DRT authors' ImageNet-pretrained dynamic ResNet checkpoint (key layout of the released resnet_dra.py:
`module.features.` prefix, `conv_s1..4` residual kernels, `fc.0` / `fc.2` attention) loads into DynamicResNet, and
the released learning-rate rule follows: parameters found in the checkpoint at 1x, new ones (the heads) at 10x."""

from __future__ import annotations

import re

import torch

from domadapt.models import DynamicResNet


def authors_layout(net: DynamicResNet) -> dict[str, torch.Tensor]:
    """Our state dict written the way the released code names it (BottleneckKDRA, resnet_dra.py:195-219)."""
    out = {}
    for key, value in net.backbone.state_dict().items():
        if key.endswith("conv2.residual"):  # (K, C_out, C_in) -> conv_s{k}.weight (C_out, C_in, 1, 1)
            block = key[: -len(".conv2.residual")]
            out.update({f"{block}.conv_s{k + 1}.weight": value[k][..., None, None].clone() for k in range(len(value))})
        elif key.endswith("conv2.temperature"):
            continue  # no temperature in the released block (softmax at T = 1)
        else:
            key = re.sub(r"conv2\.squeeze\.0\.weight$", "fc.0.weight", key)
            out[re.sub(r"conv2\.to_attention\.weight$", "fc.2.weight", key)] = value.clone()
    state = {f"module.features.{k}": v for k, v in out.items()}
    state["module.classifier.weight"] = torch.randn(1000, 2048)  # the authors' ImageNet classifier: not ours
    return state


def test_the_authors_checkpoint_loads_every_dynamic_tensor_and_trains_it_at_1x(tmp_path):
    torch.manual_seed(0)
    src = DynamicResNet("resnet50", num_classes=7)
    with torch.no_grad():  # pretrained: residual kernels and attention away from their initial values
        for name, p in src.backbone.named_parameters():
            if "residual" in name or "squeeze" in name or "to_attention" in name:
                p.normal_(0, 0.05)
    path = tmp_path / "drt_imagenet_r50.pth"
    state = authors_layout(src)
    assert any(".conv_s4.weight" in k for k in state) and any(".fc.2.weight" in k for k in state)
    torch.save(state, path)
    net = DynamicResNet("resnet50", num_classes=7, weights=str(path))
    for key, value in src.backbone.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[key], value), key
    assert net.pretrained_dynamic
    groups = {g["name"]: {id(p) for p in g["params"]} for g in net.param_groups(10.0)}
    residual = net.backbone.layer1[0].conv2.residual
    assert id(residual) in groups["backbone"] and id(net.head.weight) in groups["head"]
    x = torch.randn(2, 3, 64, 64)
    src.eval(), net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x).features, src(x).features)


def test_a_static_imagenet_file_keeps_the_dynamic_parameters_new_at_10x(tmp_path):
    static = DynamicResNet("resnet50", num_classes=7, dynamic=False)
    path = tmp_path / "static.pth"
    torch.save(static.backbone.state_dict(), path)
    net = DynamicResNet("resnet50", num_classes=7, weights=str(path))
    groups = {g["name"]: {id(p) for p in g["params"]} for g in net.param_groups(10.0)}
    assert not net.pretrained_dynamic and id(net.backbone.layer1[0].conv2.residual) in groups["head"]
