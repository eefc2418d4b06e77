"""SmpSegmenter: any smp architecture, decoder features, name validation."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch

from domadapt.models import SmpSegmenter, smp_architectures, smp_encoders


@pytest.mark.parametrize(
    ("arch", "feature_stride"),
    [("Unet", 1), ("FPN", 4), ("DeepLabV3Plus", 4), ("PSPNet", 8), ("Segformer", 4)],
)
def test_features_are_what_the_segmentation_head_consumes(arch, feature_stride):
    torch.manual_seed(0)
    model = SmpSegmenter(arch, "resnet18", num_classes=3).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        assert out.logits.shape == (1, 3, 64, 96)
        assert out.features.shape == (1, model.num_features, 64 // feature_stride, 96 // feature_stride)
        assert torch.allclose(model.segmentation_head(out.features), out.logits)


def test_same_logits_as_the_smp_model_it_was_built_from():
    torch.manual_seed(0)
    ours = SmpSegmenter("FPN", "resnet18", num_classes=3).eval()
    reference = smp.create_model("FPN", encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    reference.load_state_dict(ours.state_dict())  # same key names as smp's own model
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x).logits, reference(x), atol=1e-6)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown smp arch 'Unet3'.*'DeepLabV3Plus'"):
        SmpSegmenter("Unet3", "resnet18")
    with pytest.raises(ValueError, match="unknown smp encoder_name 'resnet19'.*'resnet18'"):
        SmpSegmenter("Unet", "resnet19")
    with pytest.raises(ValueError, match="timm has no model"):
        SmpSegmenter("Unet", "tu-not_a_timm_model")
    assert "Unet" in smp_architectures() and "resnet18" in smp_encoders()


def test_arch_name_is_case_insensitive_like_smp():
    assert SmpSegmenter("unet", "resnet18", num_classes=2).arch == "Unet"


def test_input_not_divisible_by_the_stride_says_how_to_pad():
    model = SmpSegmenter("FPN", "resnet18", num_classes=2)
    with pytest.raises(ValueError, match="65x64 must be divisible by 32; pad to 96x64"):
        model(torch.randn(1, 3, 65, 64))


@pytest.mark.parametrize("bad", [{"classes": 4}, {"activation": "softmax"}, {"aux_params": {"classes": 2}}])
def test_arguments_that_would_break_the_contract_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SmpSegmenter("Unet", "resnet18", **bad)


def test_decoder_channels_set_the_decoder_widths_and_feature_width():
    model = SmpSegmenter("Unet", "resnet18", num_classes=3, decoder_channels=[64, 32, 16, 16, 8]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert model.num_features == 8 and out.features.shape == (1, 8, 64, 96)
    widths = {m.out_channels for n, m in model.named_modules() if "decoder" in n and isinstance(m, torch.nn.Conv2d)}
    assert widths == {64, 32, 16, 8}  # smp's default decoder is (256, 128, 64, 32, 16)
