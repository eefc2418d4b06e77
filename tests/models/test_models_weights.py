"""load_weights: local files, backbone-only files, wrappers, shape errors and ImageNet downloads."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from domadapt.models import DigitsNet, ResNetClassifier, SmpSegmenter, load_weights
from domadapt.models.weights import read_state_dict


def _classifier(seed: int = 0, **kw) -> ResNetClassifier:
    torch.manual_seed(seed)
    return ResNetClassifier(**{"arch": "resnet18", "num_classes": 7, "bottleneck_dim": 16, **kw})


def _same(a: dict, b: dict, prefix: str = "") -> bool:
    """``b``'s tensors whose key starts with ``prefix`` equal ``a``'s under the same key."""
    keys = [k for k in b if k.startswith(prefix)]
    assert keys
    return all(torch.equal(a[k], b[k]) for k in keys)


def _loaded_into(part: dict, state: dict, prefix: str) -> bool:
    """Every tensor of ``part`` equals ``state[prefix + key]``."""
    assert part
    return all(torch.equal(v, state[prefix + k]) for k, v in part.items())


def _fail_download(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_none_loads_nothing():
    model = _classifier(seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_weights(model, None, kind="resnet18")
    assert _same(before, model.state_dict())


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    state = _classifier().state_dict()
    state["backbone.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)  # model has 3x3 kernels
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"backbone\.layer1\.0\.conv1\.weight") as err:
        _classifier(weights=str(path))
    assert "(64, 64, 1, 1)" in str(err.value) and "(64, 64, 3, 3)" in str(err.value)
    assert "\n" not in str(err.value)


def test_head_of_another_class_count_is_reinitialised_with_a_warning(tmp_path):
    source = _classifier(num_classes=12)
    path = tmp_path / "other_task.pth"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match="head keeps its initialisation"):
        model = _classifier(seed=9, num_classes=7, weights=str(path))
    assert _same(source.state_dict(), model.state_dict(), prefix="backbone.")
    assert _same(source.state_dict(), model.state_dict(), prefix="bottleneck.")
    assert model.head.weight.shape == (7, 16)


def test_backbone_only_torchvision_file_loads_into_the_backbone(tmp_path):
    torch.manual_seed(42)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(tv.state_dict(), path)
    with pytest.warns(UserWarning, match="missing"):  # bottleneck and head are new
        model = _classifier(weights=str(path))
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert _loaded_into(tv_state, model.state_dict(), "backbone.")
    assert not any(k.startswith("fc.") or k.startswith("backbone.fc.") for k in model.state_dict())


def test_backbone_only_file_loads_into_an_smp_encoder(tmp_path):
    # smp's ResNet encoders are torchvision ResNets without fc, so a torchvision file fits "encoder.".
    torch.manual_seed(42)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(tv.state_dict(), path)
    with pytest.warns(UserWarning):
        seg = SmpSegmenter("FPN", "resnet18", num_classes=3, weights=str(path))
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert _loaded_into(tv_state, seg.state_dict(), "encoder.")


def test_safetensors_and_dataparallel_prefix(tmp_path):
    from safetensors.torch import save_file

    source = _classifier()
    path = tmp_path / "w.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = _classifier(seed=4, weights=str(path))
    assert _same(source.state_dict(), model.state_dict())


def test_wrapper_prefix_kept_when_the_module_uses_it(tmp_path):
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(3, 2)

    source, target = Wrapper(), Wrapper()
    torch.save(source.state_dict(), tmp_path / "w.pt")  # keys "model.weight": must not be stripped
    load_weights(target, str(tmp_path / "w.pt"), kind="wrapper", strict=True)
    assert torch.equal(target.model.weight, source.model.weight)


def test_strict_reports_missing_and_unexpected(tmp_path):
    torch.save({"weight": torch.ones(2, 3), "unrelated.weight": torch.zeros(2)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="1 missing keys .* 1 unexpected"):
        load_weights(nn.Linear(3, 2), str(tmp_path / "w.pth"), kind="linear", strict=True)
    target = nn.Linear(3, 2)
    with pytest.warns(UserWarning, match="1 tensors loaded, 1 missing .* 1 unexpected"):
        load_weights(target, str(tmp_path / "w.pth"), kind="linear")
    assert torch.equal(target.weight, torch.ones(2, 3))


def test_a_file_matching_nothing_is_an_error_not_a_warning(tmp_path):
    # e.g. a checkpoint of a LightningModule that stores the network under an unknown attribute name
    source = _classifier()
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.ckpt.pt")
    with pytest.raises(ValueError, match="no key matches resnet18; file keys look like \\['backbone.net."):
        _classifier(weights=str(tmp_path / "w.ckpt.pt"))


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_weights(nn.Linear(3, 2), str(tmp_path / "absent.pth"), kind="linear")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="suffix"):
        load_weights(nn.Linear(3, 2), str(tmp_path / "w.bin"), kind="linear")
    # weights_only loading refuses arbitrary pickled objects instead of executing them.
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Opaque()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="could not read weights") as err:
        load_weights(nn.Linear(3, 2), str(tmp_path / "pickled.pth"), kind="linear")
    assert "\n" not in str(err.value)


class _Opaque:
    pass


def test_imagenet_download_failure_is_one_line(monkeypatch):
    urls = []

    def fail(url, *args, **kwargs):
        urls.append(url)
        _fail_download()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    with pytest.raises(RuntimeError) as err:
        _classifier(weights="imagenet")
    message = str(err.value)
    assert "\n" not in message
    assert "could not download ImageNet weights for resnet18" in message
    assert "local path" in message and "weights=" in message
    assert urls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]


def test_imagenet_weights_go_into_the_backbone(monkeypatch):
    torch.manual_seed(7)
    fake = torchvision.models.resnet18(weights=None).state_dict()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: fake)
    with pytest.warns(UserWarning, match="missing"):
        model = _classifier(weights="imagenet")
    backbone = {k: v for k, v in fake.items() if not k.startswith("fc.")}
    assert _loaded_into(backbone, model.state_dict(), "backbone.")


def test_imagenet_for_a_model_torchvision_does_not_have():
    with pytest.raises(ValueError, match="no ImageNet weights for 'DigitsNet'"):
        DigitsNet(weights="imagenet")


def test_smp_encoder_download_failure_is_one_line(monkeypatch):
    import segmentation_models_pytorch.encoders as smp_encoders

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    for kwargs in ({"encoder_weights": "imagenet"}, {"weights": "imagenet"}):
        with pytest.raises(RuntimeError, match="could not download imagenet weights for smp encoder") as err:
            SmpSegmenter("Unet", "resnet18", num_classes=3, **kwargs)
        assert "\n" not in str(err.value)


def test_a_lightning_checkpoint_of_a_method_gives_its_network(tmp_path):
    # a domadapt method's .ckpt: the network under `net.`, other modules (a discriminator) beside it
    source = _classifier()
    state = {f"net.{k}": v for k, v in source.state_dict().items()}
    state["loss.discriminator.0.weight"] = torch.zeros(4, 4)
    torch.save({"state_dict": state, "global_step": 7}, tmp_path / "last.ckpt")
    assert set(read_state_dict(tmp_path / "last.ckpt")) == set(source.state_dict())
    loaded = _classifier(weights=str(tmp_path / "last.ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))
