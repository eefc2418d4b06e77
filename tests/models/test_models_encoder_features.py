"""``encoder_features`` (the last encoder stage, what DAFormer's feature distance reads) and ``imagenet_encoder``."""

import torch

from domadapt.models import DeepLabV2, SmpSegmenter


def test_smp_segformer_encoder_features_are_the_last_mit_stage():
    torch.manual_seed(0)
    net = SmpSegmenter(arch="Segformer", encoder_name="mit_b0", num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    f = net.encoder_features(x)
    assert f.shape == (1, 256, 2, 2)
    torch.testing.assert_close(f, net.encoder(x)[-1])
    assert net.imagenet_encoder is False


def test_deeplabv2_encoder_features_are_layer4():
    torch.manual_seed(0)
    net = DeepLabV2(backbone="resnet50", num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.encoder_features(x), net(x).features)
    assert net.imagenet_encoder is False
