"""DeepLab-V2: output stride 8, ASPP-V2 sum of dilated branches, BatchNorm freezing, BDL init files."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.models import ASPPV2, DeepLabV2


@functools.lru_cache(maxsize=None)
def _r50(**kwargs) -> DeepLabV2:
    torch.manual_seed(0)
    return DeepLabV2("resnet50", num_classes=4, **kwargs)


def _bns(model: DeepLabV2) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def _by_hand(aspp: ASPPV2, features: torch.Tensor, dilations=(6, 12, 18, 24)) -> torch.Tensor:
    """ASPP-V2 written out: sum over d of conv3x3(features; dilation=padding=d) + bias."""
    return sum(
        F.conv2d(features, conv.weight, conv.bias, padding=d, dilation=d)
        for conv, d in zip(aspp.conv2d_list, dilations, strict=True)
    )


def test_resnet101_forward_on_a_tiny_input():
    torch.manual_seed(0)
    model = DeepLabV2("resnet101", num_classes=19).eval()
    assert sum(1 for _ in model.layer3) == 23  # ResNet-101 block counts [3, 4, 23, 3]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 65))
    assert out.logits.shape == (1, 19, 65, 65)
    assert out.features.shape == (1, 2048, 9, 9)  # ceil(65 / 8)


@pytest.mark.parametrize("size", [(64, 48), (65, 41)])
def test_output_stride_is_8(size):
    model = _r50().eval()
    model.upsample_logits = False
    try:
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
    finally:
        model.upsample_logits = True
    expected = tuple(-(-s // 8) for s in size)
    assert out.features.shape[-2:] == expected
    assert out.logits.shape[-2:] == expected


def test_dilated_stages_have_stride_1_and_dilate_every_block():
    model = _r50()
    for layer, dilation in ((model.layer3, 2), (model.layer4, 4)):
        for block in layer:
            assert block.conv2.dilation == (dilation, dilation) and block.conv2.padding == (dilation, dilation)
            assert block.conv1.stride == block.conv2.stride == (1, 1)
    # torchvision ("v1.5") puts layer2's stride on the 3x3 conv; caffe_style moves it to the first 1x1.
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_caffe_style_moves_the_stride_and_rounds_the_max_pool_up():
    torch.manual_seed(0)
    model = DeepLabV2("resnet50", num_classes=4, caffe_style=True, upsample_logits=False).eval()
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    # conv1: 64 -> 32; ceil-mode pool: 32 -> 17 (not 16); layer2: 17 -> 9.
    assert out.features.shape[-2:] == (9, 9)


def test_aspp_dilations_and_sum_of_branches():
    aspp = ASPPV2(in_channels=8, num_classes=3)
    assert [c.dilation for c in aspp.conv2d_list] == [(d, d) for d in (6, 12, 18, 24)]
    assert [c.padding for c in aspp.conv2d_list] == [(d, d) for d in (6, 12, 18, 24)]
    assert all(c.bias is not None and c.kernel_size == (3, 3) for c in aspp.conv2d_list)
    x = torch.randn(2, 8, 13, 11)
    with torch.no_grad():
        assert torch.allclose(aspp(x), _by_hand(aspp, x), atol=1e-5)
        # Summed, not averaged or concatenated: dropping a branch changes the output by exactly it.
        last = aspp.conv2d_list[3]
        assert torch.allclose(aspp(x) - last(x), _by_hand(aspp, x) - last(x), atol=1e-5)


def test_aspp_init_is_normal_with_std_0_01():
    torch.manual_seed(0)
    weight = ASPPV2(2048, 19).conv2d_list[0].weight
    assert abs(weight.std().item() - 0.01) < 5e-4 and abs(weight.mean().item()) < 5e-4


def test_logits_are_the_bilinear_upsampled_aspp_of_layer4():
    model = _r50().eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = model(x)
        coarse = _by_hand(model.layer5, out.features)  # (1, K, 5, 7)
        expected = F.interpolate(coarse, size=(40, 56), mode="bilinear", align_corners=True)
    assert torch.allclose(out.logits, expected, atol=1e-4)


@pytest.mark.parametrize(("freeze_bn", "stats_update"), [("affine", True), ("stats", False), ("none", True)])
def test_freeze_bn_modes(freeze_bn, stats_update):
    torch.manual_seed(0)
    model = DeepLabV2("resnet50", num_classes=4, freeze_bn=freeze_bn)
    bns = _bns(model)
    affine = {id(p) for bn in bns for p in bn.parameters()}
    optimised = {id(p) for g in model.param_groups() for p in g["params"]}
    # Frozen affine parameters neither require gradients nor reach the optimiser.
    assert all(p.requires_grad == (freeze_bn == "none") for bn in bns for p in bn.parameters())
    assert affine <= optimised if freeze_bn == "none" else not affine & optimised
    assert all(bn.training == (freeze_bn != "stats") for bn in bns)  # the constructor leaves train mode
    stats = bns[5].running_mean.clone()
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 17, 17))
    assert (not torch.equal(stats, bns[5].running_mean)) == stats_update
    model.eval().train()  # mode switches never re-enable frozen statistics
    assert all(bn.training == (freeze_bn != "stats") for bn in bns)


def test_multi_level_adds_an_auxiliary_classifier_on_layer3():
    torch.manual_seed(0)
    model = DeepLabV2("resnet50", num_classes=4, multi_level=True).eval()
    assert model.aux_classifier is model.layer5 and model.classifier is model.layer6
    assert model.layer5.conv2d_list[0].in_channels == 1024 and model.layer6.conv2d_list[0].in_channels == 2048
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        main, aux = model.forward_levels(x)
        assert torch.equal(model(x).logits, main.logits)  # forward() is the main level
        coarse = _by_hand(model.layer5, aux.features)  # (1, K, 4, 4)
        expected = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=True)
        assert torch.allclose(aux.logits, expected, atol=1e-4)
    assert main.features.shape == (1, 2048, 4, 4) and aux.features.shape == (1, 1024, 4, 4)
    assert aux.logits.shape == main.logits.shape == (1, 4, 32, 32)
    head = {id(p) for p in model.param_groups()[1]["params"]}
    assert head == {id(p) for p in [*model.layer5.parameters(), *model.layer6.parameters()]}


def test_bdl_init_file_loads_the_backbone_and_reinitialises_a_21_class_classifier(tmp_path):
    # The DeepLab init BDL starts from: Caffe-converted ResNet-101 keys under "Scale.", a VOC (21) layer5.
    torch.manual_seed(1)
    init = DeepLabV2("resnet50", num_classes=21, caffe_style=True)
    path = tmp_path / "DeepLab_resnet_pretrained_init.pth"
    torch.save({f"Scale.{k}": v for k, v in init.state_dict().items()}, path)
    with pytest.warns(UserWarning, match="layer5"):
        model = DeepLabV2("resnet50", num_classes=19, caffe_style=True, weights=str(path))
    ref = init.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("layer5."):
            assert value.shape[0] == 19
        else:
            assert torch.equal(value, ref[key]), key


def test_caffe_weights_see_the_released_input_bgr_0_255_minus_the_caffe_mean(tmp_path):
    """The official DeepLab init end to end: our RGB data pipeline with the Caffe normalisation and
    `input_channels="bgr"` feeds the network exactly what the released loader feeds it
    (BDL data/gta5_dataset.py:37-49: `image[:, :, ::-1] - IMG_MEAN`, 0-255 values, BGR order)."""
    import numpy as np

    from domadapt.data.transforms import CAFFE_MEAN, CAFFE_STD, Augment

    torch.manual_seed(2)
    init = DeepLabV2("resnet50", num_classes=21, caffe_style=True, freeze_bn="affine").eval()
    path = tmp_path / "DeepLab_resnet_pretrained_init.pth"
    torch.save({f"Scale.{k}": v for k, v in init.state_dict().items()}, path)  # the official key layout
    with pytest.warns(UserWarning, match="layer5"):
        ours = DeepLabV2("resnet50", num_classes=19, caffe_style=True, input_channels="bgr", weights=str(path)).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)  # RGB, as decoded
    x = Augment(mean=CAFFE_MEAN, std=CAFFE_STD, train=False)(image=image)["image"][None]
    img_mean = np.array((104.00698793, 116.66876762, 122.67891434), dtype=np.float32)  # BDL data/__init__.py:8
    released = (image.astype(np.float32)[:, :, ::-1] - img_mean).transpose(2, 0, 1).copy()
    torch.testing.assert_close(x[0].flip(0), torch.from_numpy(released), rtol=0, atol=1e-3)  # what conv1 sees
    with torch.no_grad():
        got, want = ours(x).features, init(torch.from_numpy(released)[None]).features
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()  # float32 rounding of 0-255 inputs only
        rgb = DeepLabV2("resnet50", num_classes=19, caffe_style=True, weights=str(path)).eval()
        assert not torch.allclose(rgb(x).features, ours(x).features, atol=1e-2)  # the channel order matters


def test_input_channels_is_checked():
    with pytest.raises(ValueError, match="input_channels='brg'"):
        DeepLabV2("resnet50", input_channels="brg")
