"""ResNetClassifier and DigitsNet: where features come from, dropout placement, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from domadapt.models import DigitsNet, ResNetClassifier


@pytest.mark.parametrize(("arch", "pooled"), [("resnet18", 512), ("resnet50", 2048)])
def test_without_bottleneck_features_are_the_pooled_backbone_output(arch, pooled):
    torch.manual_seed(0)
    model = ResNetClassifier(arch, num_classes=5, bottleneck_dim=None).eval()
    assert model.num_features == pooled
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        b = model.backbone
        h = b.layer4(b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x))))))))
        assert torch.allclose(out.features, h.mean(dim=(2, 3)), atol=1e-5)
        assert torch.allclose(out.logits, out.features @ model.head.weight.T + model.head.bias, atol=1e-5)


def test_bottleneck_features_and_dropout_only_before_the_head():
    torch.manual_seed(0)
    model = ResNetClassifier("resnet18", num_classes=5, bottleneck_dim=8, dropout=0.5).train()
    x = torch.randn(4, 3, 32, 32)
    first, second = model(x), model(x)
    assert first.features.shape == (4, 8) and (first.features >= 0).all()  # after ReLU
    assert torch.equal(first.features, second.features)  # no dropout on what alignment sees
    assert not torch.equal(first.logits, second.logits)  # dropout before the head


def test_resnet_arch_is_validated():
    with pytest.raises(ValueError, match="resnet34"):
        ResNetClassifier("resnet34")


def test_digits_net_shapes_and_input_size():
    model = DigitsNet(num_classes=4, in_channels=1, num_features=32, input_size=28).eval()
    out = model(torch.randn(3, 1, 28, 28))
    assert out.logits.shape == (3, 4) and out.features.shape == (3, 32)
    with pytest.raises(ValueError, match="expected 28x28 inputs, got \\(32, 32\\)"):
        model(torch.randn(3, 1, 32, 32))
    with pytest.raises(ValueError, match="input_size=12"):
        DigitsNet(input_size=12)


def test_digits_net_learns_a_separable_problem():
    # Class c images carry a bright square in quadrant c: a few SGD steps must fit them.
    g = torch.Generator().manual_seed(0)
    y = torch.arange(32) % 4
    x = 0.3 * torch.randn(32, 3, 32, 32, generator=g)
    for c in range(4):
        r, s = divmod(c, 2)
        x[y == c, :, 16 * r : 16 * r + 16, 16 * s : 16 * s + 16] += 1.0
    torch.manual_seed(0)
    model = DigitsNet(num_classes=4, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert (model.eval()(x).logits.argmax(1) == y).float().mean() > 0.9
