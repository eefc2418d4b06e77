"""`optimizer: sgd_released` replays the released DeepLab-V2 code's optimiser: the same parameter updates as a
transcription of BDL's `get_1x_lr_params_NOscale` / `get_10x_lr_params` grouping run through a transcription of
torch 0.4's `SGD.step`, on the same network."""

from __future__ import annotations

import copy

import pytest
import torch

from domadapt.methods import SourceOnly
from domadapt.models import DeepLabV2
from domadapt.released_sgd import ReleasedSGD
from tests.conftest import TinySegNet

LR, MOMENTUM, WD = 2.5e-4, 0.9, 5e-4


def reference_groups(net: DeepLabV2) -> list[dict]:
    """BDL model/deeplab.py:188-218: the 1x generator walks modules() and yields each module's parameters()."""
    b = [net.conv1, net.bn1, net.layer1, net.layer2, net.layer3, net.layer4]
    one_x = [k for m in b for j in m.modules() for k in j.parameters() if k.requires_grad]
    return [{"params": one_x, "lr": LR}, {"params": list(net.layer5.parameters()), "lr": 10 * LR}]


def reference_step(groups: list[dict], state: dict) -> None:
    """torch 0.4.1 `SGD.step` (dampening 0, no Nesterov): the weight decay is added to p.grad in place."""
    for group in groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            d_p = p.grad.data
            d_p.add_(p.data, alpha=WD)
            if id(p) not in state:
                buf = state[id(p)] = torch.zeros_like(p.data)
                buf.mul_(MOMENTUM).add_(d_p)
            else:
                buf = state[id(p)]
                buf.mul_(MOMENTUM).add_(d_p)
            p.data.add_(buf, alpha=-group["lr"])


def _loss(net, x, y):
    return torch.nn.functional.cross_entropy(net(x).logits, y)


def test_same_updates_as_the_released_grouping_over_sgd_steps_with_momentum():
    torch.manual_seed(0)
    ours = DeepLabV2(backbone="resnet50", num_classes=4, freeze_bn="affine")
    ref = copy.deepcopy(ours)
    module = SourceOnly(net=ours, lr=LR, optimizer="sgd_released", momentum=MOMENTUM, weight_decay=WD, head_lr_mult=10)
    opt = module.build_optimizer(module.param_groups())
    assert isinstance(opt, ReleasedSGD)
    groups, state = reference_groups(ref), {}
    assert len(groups[0]["params"]) == sum(opt.param_groups[0]["repeats"])  # 48 x 3 + 4 x 4 + 1 for a ResNet-50
    x, y = torch.randn(2, 3, 41, 41), torch.randint(0, 4, (2, 41, 41))
    ours.train(), ref.train()
    for _ in range(3):
        for net in (ours, ref):
            net.zero_grad(set_to_none=True)
            _loss(net, x, y).backward()
        opt.step()
        reference_step(groups, state)
    before = dict(DeepLabV2(backbone="resnet50", num_classes=4, freeze_bn="affine").named_parameters())
    moved = 0
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-9, msg=name)
        moved += int(not torch.equal(p, before[name]))
    assert moved > 50  # the comparison is not vacuous: the parameters did move


def test_backbone_parameters_are_updated_three_or_four_times_the_head_once():
    net = DeepLabV2(backbone="resnet50", num_classes=4, freeze_bn="affine")
    repeats = net.released_lr_repeats()
    assert repeats[id(net.conv1.weight)] == 1
    assert repeats[id(net.layer1[0].conv2.weight)] == 3 and repeats[id(net.layer1[0].downsample[0].weight)] == 4
    assert id(net.layer5.conv2d_list[0].weight) not in repeats and id(net.bn1.weight) not in repeats  # head; frozen BN
    # one step from rest without weight decay: k listings move a parameter by lr * g * (1 + (1 + mu) + ... )
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.ones(3)
    ReleasedSGD([{"params": [p], "repeats": [3]}], lr=1.0, momentum=0.5).step()
    torch.testing.assert_close(p.data, -torch.full((3,), 1 + 1.5 + 1.75))


def test_a_network_without_the_released_listing_is_refused_with_a_clear_error():
    module = SourceOnly(net=TinySegNet(), lr=LR, optimizer="sgd_released")
    with pytest.raises(ValueError, match="'sgd_released' replays the released DeepLab-V2"):
        module.build_optimizer(module.param_groups())
