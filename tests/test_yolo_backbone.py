"""YOLO11n-pose as RSC-Net's backbone: exact conversion from the detector, alphas on the residual branches only,
the shipped pretrained file, freezing, and RSC-Net checkpoints that describe the backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrpose import assets
from lrpose.models.backbone_file import freeze_pretrained, fresh_names, init_backbone, load_backbone, save_backbone
from lrpose.models.checkpoint import load_rscnet, save
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.models.yolo_backbone import N_RESIDUAL, Bottleneck, ResolutionAwareYoloPose, convert_ultralytics
from lrpose.resolution import NUM_RANGES
from tests.test_models import mean_params


def _ultralytics_model():
    """The installed yolo11n-pose, fused, through lrpose's detector adapter (skips without it)."""
    from lrpose.yolo_runtime import load_torch_model, yolo_available

    path = assets.locate("detector").path
    if not yolo_available() or path is None or "pose" not in path.name:
        pytest.skip("the YOLO pose detector is not installed (bash tools/install-yolo.sh)")
    return load_torch_model(path).float().eval()


def _layer_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Ultralytics' own routing over layers 0-22 (each layer's ``f``: -1 the previous output, else indices)."""
    y, outs = x, []
    for layer in model.model[:23]:
        if layer.f != -1:
            y = outs[layer.f] if isinstance(layer.f, int) else [y if j == -1 else outs[j] for j in layer.f]
        y = layer(y)
        outs.append(y)
    return outs


def test_conversion_reproduces_the_detector_p3_p4_p5() -> None:
    model = _ultralytics_model()
    net = ResolutionAwareYoloPose().eval()
    missing, unexpected = net.load_state_dict(convert_ultralytics(model.state_dict()), strict=False)
    assert not unexpected and set(missing) == {k for k in fresh_names(net) if not k.endswith("num_batches_tracked")}
    torch.manual_seed(0)
    x = torch.rand(2, 3, 160, 96)  # not square: the neck's upsampling must line up on both sides
    with torch.no_grad():
        ref = _layer_outputs(model, x)
        for p in range(NUM_RANGES):  # every alpha is 1: each range is the detector exactly
            for ours, theirs in zip(net.levels(x, p), (ref[16], ref[19], ref[22]), strict=True):
                assert ours.shape == theirs.shape
                assert (ours - theirs).abs().max() < 1e-4


def test_conversion_rejects_other_layouts() -> None:
    sd = {f"layers.{k}": v for k, v in ResolutionAwareYoloPose().state_dict().items()}
    with pytest.raises(ValueError, match="not a fused YOLO11n model"):
        convert_ultralytics({("model." + k.removeprefix("layers.")): v for k, v in sd.items()} | {"model.3.conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing"):
        convert_ultralytics({"model.0.conv.weight": torch.zeros(16, 3, 3, 3)})


def test_alpha_scales_only_the_residual_branch() -> None:
    torch.manual_seed(1)
    block = Bottleneck(8, 4)
    x = torch.randn(2, 8, 5, 5)
    branch = block.cv2(block.cv1(x))
    assert torch.equal(block(x, [torch.tensor(0.0)]), x)
    assert torch.allclose(block(x, [torch.tensor(0.3)]), x + 0.3 * branch)
    net = ResolutionAwareYoloPose().eval()
    assert all(a.shape == (N_RESIDUAL, 1, 1, 1, 1) for a in net.alphas.values())
    with torch.no_grad():
        net.alphas["2"][5].fill_(0.0)  # range 2 only: ranges 0 and 2 now differ, 0 and 1 do not
        x = torch.rand(1, 3, 64, 64)
        out = [net(x, p) for p in range(3)]
    assert out[0].shape == (1, net.out_channels, 1, 1) and net.out_channels == 1984
    assert torch.equal(out[0], out[1]) and not torch.allclose(out[0], out[2])


def test_shipped_pretrained_file_and_freezing() -> None:
    sd, origin = load_backbone(assets.resolve("backbone_yolopose"), "yolopose")
    assert "AGPL" in origin["licence"] and "COCO" in origin["trained_on"]
    model = RSCNet(RSCNetConfig(backbone="yolopose", input_size=64), mean_params())
    init_backbone(model, assets.resolve("backbone_yolopose"))
    conv0 = model.backbone.layers[0].conv.weight
    assert torch.equal(conv0, sd["layers.0.conv.weight"])
    frozen = freeze_pretrained(model.backbone)
    assert frozen == sum(v.numel() for v in sd.values())
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.backbone.named_parameters()} & fresh_names(model.backbone)
    assert all(n.startswith(("alphas.", "readout.", "norm.")) for n in trainable)
    before = conv0.clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(torch.randn(2, 3, 64, 64), 3)
    (out.pose6d.square().sum() + out.embedding.square().sum()).backward()
    assert model.backbone.alphas["3"].grad is not None and model.backbone.alphas["3"].grad.abs().sum() > 0
    opt.step()
    assert torch.equal(conv0, before)


def test_rscnet_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = RSCNet(RSCNetConfig(backbone="yolopose", input_size=64), mean_params()).eval()
    with torch.no_grad():
        for a in model.backbone.alphas.values():
            a.uniform_(0.5, 1.5)
    save(tmp_path / "net.pt", model, "body", trained=True)
    loaded, info = load_rscnet(tmp_path / "net.pt")
    assert loaded.config.backbone == "yolopose" and loaded.feature_dim == 1984
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x, 4).pose6d, loaded(x, 4).pose6d)


def test_backbone_file_round_trip(tmp_path: Path) -> None:
    net = ResolutionAwareYoloPose()
    sd = {k: v for k, v in net.state_dict().items() if k not in fresh_names(net)}
    save_backbone(tmp_path / "b.pt", "yolopose", sd, {"licence": "test"})
    back, origin = load_backbone(tmp_path / "b.pt", "yolopose")
    assert origin == {"licence": "test"} and all(torch.equal(back[k], sd[k]) for k in sd)
