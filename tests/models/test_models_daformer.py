"""DAFormerSegmenter and DAFormerHead: the head against a plain-op transcription of the released forward
(DAFormer@e6f6e04 mmseg/models/decode_heads/daformer_head.py, aspp_head.py, sep_aspp_head.py, segformer_head.py,
decode_head.py; mmseg EncoderDecoder's resize), shapes, parameter groups and argument errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.models import DAFormerHead, DAFormerSegmenter
from domadapt.models.segmenter import holds_imagenet_encoder

DILATIONS = (1, 6, 12, 18)


def _cbr(x, p, prefix, padding=0, dilation=1, groups=1):
    """mmcv ConvModule(norm_cfg=BN, act_cfg=ReLU) in eval mode: conv (no bias) -> BN (running stats) -> ReLU."""
    x = F.conv2d(x, p[prefix + "conv.weight"], None, 1, padding, dilation, groups)
    x = F.batch_norm(x, p[prefix + "bn.running_mean"], p[prefix + "bn.running_var"], p[prefix + "bn.weight"],
                     p[prefix + "bn.bias"], training=False, momentum=0.0, eps=1e-5)
    return F.relu(x)


def released_head(p: dict[str, torch.Tensor], inputs: list[torch.Tensor], dilations=DILATIONS) -> tuple:
    """DAFormerHead.forward with fusion_cfg aspp (sep=True, pool=False), eval mode, from the released state-dict keys
    below ``decode_head.``; returns (fused features, logits)."""
    n = inputs[-1].shape[0]
    os_size = inputs[0].shape[2:]
    c = {}
    for i, x in enumerate(inputs):  # daformer_head.py:166-179
        tokens = F.linear(x.flatten(2).transpose(1, 2).contiguous(),  # segformer_head.py:26-29 (MLP)
                          p[f"embed_layers.{i}.proj.weight"], p[f"embed_layers.{i}.proj.bias"])
        c[i] = tokens.permute(0, 2, 1).contiguous().reshape(n, -1, x.shape[2], x.shape[3])
        if c[i].shape[2:] != os_size:
            c[i] = F.interpolate(c[i], size=os_size, mode="bilinear", align_corners=False)
    x = torch.cat(list(c.values()), dim=1)  # :181
    aspp_outs = []  # ASPPWrapper.forward, daformer_head.py:67-83
    for j, d in enumerate(dilations):
        at = f"fuse_layer.aspp_modules.{j}."
        if d == 1:  # aspp_head.py:33-43: 1x1, padding 0
            aspp_outs.append(_cbr(x, p, at))
        else:  # sep_aspp_head.py:18-27: DepthwiseSeparableConvModule 3x3
            dw = _cbr(x, p, at + "depthwise_conv.", padding=d, dilation=d, groups=x.shape[1])
            aspp_outs.append(_cbr(dw, p, at + "pointwise_conv."))
    feat = _cbr(torch.cat(aspp_outs, dim=1), p, "fuse_layer.bottleneck.", padding=1)  # :59-65
    logits = F.conv2d(feat, p["conv_seg.weight"], p["conv_seg.bias"])  # cls_seg, dropout off in eval
    return feat, logits


def _randomise_bn(module: nn.Module, seed: int = 3) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so that eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@torch.no_grad()
def test_head_equals_the_released_forward_written_with_plain_ops():
    torch.manual_seed(0)
    head = DAFormerHead((32, 64, 160, 256), num_classes=5).eval()  # released widths: embed 256, channels 256
    _randomise_bn(head)
    g = torch.Generator().manual_seed(1)
    # stage sizes of a 65x97 input: not powers of two, so the resize is exercised off the grid
    inputs = [torch.randn(2, c, h, w, generator=g) for c, (h, w) in
              zip((32, 64, 160, 256), ((17, 25), (9, 13), (5, 7), (3, 4)))]
    logits, features = head(inputs)
    ref_features, ref_logits = released_head(head.state_dict(), inputs)
    assert logits.shape == (2, 5, 17, 25) and features.shape == (2, 256, 17, 25)
    torch.testing.assert_close(features, ref_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_network_is_encoder_stages_then_head_then_bilinear_resize_to_the_input():
    torch.manual_seed(0)
    net = DAFormerSegmenter("mit_b0", num_classes=4, encoder_weights=None).eval()
    _randomise_bn(net.decode_head)
    x = torch.randn(1, 3, 65, 97)
    stages = net.encoder(x)[2:]  # smp: input, empty placeholder, then MiT's stages 1-4
    assert [tuple(s.shape[1:]) for s in stages] == [(32, 17, 25), (64, 9, 13), (160, 5, 7), (256, 3, 4)]
    ref_features, ref_logits = released_head(net.decode_head.state_dict(), list(stages))
    out, last = net.forward_with_encoder(x)
    # EncoderDecoder.encode_decode (encoder_decoder.py:72-82): logits resized to the image, align_corners False
    torch.testing.assert_close(out.logits, F.interpolate(ref_logits, size=(65, 97), mode="bilinear",
                                                         align_corners=False), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.features, ref_features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, stages[-1])
    torch.testing.assert_close(net.encoder_features(x), stages[-1])


@pytest.mark.parametrize("train", [True, False])
def test_mit_b0_shapes_in_train_and_eval(train):
    torch.manual_seed(0)
    net = DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights=None).train(train)
    out = net(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 3, 64, 64)
    assert out.features.shape == (2, 256, 16, 16) and net.num_features == 256 and net.num_classes == 3
    assert net.encoder_features(torch.randn(2, 3, 64, 64)).shape == (2, 256, 2, 2)
    assert net.input_multiple == 1 and net.imagenet_encoder is False


def test_dropout_acts_after_the_features_and_only_in_training():
    torch.manual_seed(0)
    net = DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights=None, embed_dims=32).train()
    assert isinstance(net.decode_head.dropout, nn.Dropout2d) and net.decode_head.dropout.p == 0.1
    _randomise_bn(net.decode_head)
    for m in net.modules():  # batch statistics and drop-path would make two passes differ anyway
        if isinstance(m, nn.BatchNorm2d) or type(m).__name__ == "DropPath":
            m.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    b = net(x)
    torch.testing.assert_close(a.features, b.features)
    assert not torch.allclose(a.logits, b.logits)
    net.decode_head.dropout.eval()
    head = net.decode_head
    torch.testing.assert_close(net(x).logits, F.interpolate(head.conv_seg(a.features), size=(64, 64),
                                                            mode="bilinear", align_corners=False))


def test_mmcv_module_semantics_conv_without_bias_then_bn_and_classifier_init():
    torch.manual_seed(0)
    head = DAFormerHead((32, 64, 160, 256), num_classes=19)
    convs = [m for m in head.fuse_layer.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 3 + 1 and all(c.bias is None for c in convs)  # 1x1, 3 separable, bottleneck
    depthwise = convs[1:7:2]
    assert [c.groups for c in depthwise] == [1024] * 3
    assert [c.dilation for c in depthwise] == [(6, 6), (12, 12), (18, 18)]
    bottleneck = head.fuse_layer.bottleneck.conv
    assert bottleneck.in_channels == 4 * 256 and bottleneck.kernel_size == (3, 3) and bottleneck.padding == (1, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in head.modules()) == len(convs)
    assert head.conv_seg.bias.abs().max() == 0 and 0.008 < head.conv_seg.weight.std() < 0.012


@pytest.mark.parametrize("lr_mult_head", [10.0, 2.5])
def test_param_groups_encoder_at_1x_whole_decode_head_at_lr_mult_head(lr_mult_head):
    net = DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights=None, embed_dims=32)
    backbone, head = net.param_groups(lr_mult_head)
    assert (backbone["name"], backbone["lr_mult"], head["name"], head["lr_mult"]) == ("backbone", 1.0, "head",
                                                                                     lr_mult_head)
    assert {id(p) for p in backbone["params"]} == {id(p) for p in net.encoder.parameters()}
    assert {id(p) for p in head["params"]} == {id(p) for p in net.decode_head.parameters()}


def test_encoder_only_file_loads_into_the_encoder(tmp_path):
    torch.manual_seed(1)
    source = DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights=None, embed_dims=32)
    path = tmp_path / "mit_b0.pth"
    torch.save(source.encoder.state_dict(), path)  # smp's MiT key names, no "encoder." prefix
    with pytest.warns(UserWarning):  # the decode head is missing from the file
        net = DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights=None, embed_dims=32, weights=str(path))
    assert all(torch.equal(a, b) for a, b in zip(net.encoder.state_dict().values(),
                                                 source.encoder.state_dict().values()))
    assert net.imagenet_encoder is False  # a file may hold anything


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"encoder_name": "resnet18"}, r"encoder_name='resnet18' is not a Mix Transformer; expected one of \['mit_b0'"),
    ({"encoder_name": "mit_b9"}, r"'mit_b9' is not a Mix Transformer"),
    ({"encoder_weights": "instagram"}, r"DAFormerSegmenter\(mit_b0\): Wrong pretrained weights `instagram`"),
    ({"dilations": ()}, r"dilations: expected one or more rates >= 1"),
    ({"dilations": (1, 0)}, r"dilations: expected one or more rates >= 1"),
    ({"dropout": 1.0}, r"dropout: expected a probability in \[0, 1\)"),
    ({"embed_dims": 0}, r"embed_dims: expected an integer >= 1"),
])
def test_bad_arguments_give_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        DAFormerSegmenter(**{"encoder_name": "mit_b0", "encoder_weights": None, **kwargs})
    assert "\n" not in str(err.value)


def test_download_failure_is_one_line_and_null_spellings_mean_no_weights(monkeypatch):
    import segmentation_models_pytorch.encoders as smp_encoders

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    for kwargs in ({}, {"weights": "imagenet", "encoder_weights": None}):  # the default is encoder_weights imagenet
        with pytest.raises(RuntimeError, match="could not download imagenet weights for smp encoder mit_b0") as err:
            DAFormerSegmenter("mit_b0", num_classes=3, **kwargs)
        assert "\n" not in str(err.value)
    assert DAFormerSegmenter("mit_b0", num_classes=3, encoder_weights="None", embed_dims=32).imagenet_encoder is False
    assert holds_imagenet_encoder("imagenet", None) and not holds_imagenet_encoder("imagenet", "/some/file.pth")


def test_head_refuses_a_wrong_number_of_stages():
    head = DAFormerHead((8, 16), num_classes=2, embed_dims=8, channels=8)
    with pytest.raises(ValueError, match="expected 2 stages, got 3"):
        head([torch.randn(1, 8, 4, 4)] * 3)
