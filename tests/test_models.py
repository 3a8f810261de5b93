"""RSC-Net model: alpha=1 equals a plain ResNet, range grouping, regressor start, baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrpose.models.backbone import ResolutionAwareResNet
from lrpose.models.regressor import MeanParams
from lrpose.models.rscnet import RSCNet, RSCNetConfig

torch.manual_seed(0)


def mean_params() -> MeanParams:
    rng = np.random.default_rng(0)
    return MeanParams(rng.normal(size=144).astype(np.float32), np.zeros(10, np.float32), np.array([0.9, 0, 0], np.float32), "test")


def _bn(x, sd, name):
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"], False)


def plain_resnet(sd: dict[str, torch.Tensor], x: torch.Tensor, depth: int) -> torch.Tensor:
    """Reference ResNet forward written from the standard definition (no alphas) over a state dict."""
    counts = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    x = F.max_pool2d(F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1")), 3, 2, 1)
    for s, n in enumerate(counts, start=1):
        for k in range(n):
            p = f"layer{s}.hmr_layer.{k}"
            stride = 2 if (k == 0 and s > 1) else 1
            idn = x
            if f"{p}.downsample.0.weight" in sd:
                idn = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            if depth == 50:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
                y = F.relu(_bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            else:
                y = F.relu(_bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
                y = _bn(F.conv2d(y, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
            x = F.relu(y + idn)
    return x


def randomise_bn(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


@pytest.mark.parametrize("depth", [18, 50])
def test_alpha_one_equals_plain_resnet_and_alpha_matters(depth):
    net = ResolutionAwareResNet(depth).eval()
    randomise_bn(net)
    x = torch.randn(2, 3, 64, 64)
    ref = plain_resnet(net.state_dict(), x, depth)
    with torch.no_grad():
        for p in range(5):
            torch.testing.assert_close(net(x, p), ref, atol=1e-5, rtol=1e-4)
        net.layer3.alphas["2"].data[1] = 0.3
        assert (net(x, 2) - ref).abs().max() > 1e-3
        torch.testing.assert_close(net(x, 1), ref, atol=1e-5, rtol=1e-4)
        net.copy_alpha_row(2, 3)
        torch.testing.assert_close(net(x, 3), net(x, 2))


def test_alpha_shapes_follow_official_layout():
    net = ResolutionAwareResNet(50)
    assert net.layer3.alphas["4"].shape == (6, 1, 1, 1, 1)
    assert "layer1.hmr_layer.0.conv1.weight" in net.state_dict()


def test_range_grouping_equals_one_by_one():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params()).eval()
    for stage in net.backbone.stages():  # distinct alphas per range
        for p in range(5):
            stage.alphas[str(p)].data.uniform_(0.5, 1.5)
    x = torch.randn(5, 3, 64, 64)
    ranges = torch.tensor([3, 0, 3, 4, 1])
    with torch.no_grad():
        grouped = net(x, ranges)
        for i in range(5):
            one = net(x[i : i + 1], int(ranges[i]))
            for name in ("features", "embedding", "pose6d", "rotmats", "betas", "cam"):
                torch.testing.assert_close(getattr(grouped, name)[i], getattr(one, name)[0], atol=1e-5, rtol=1e-4)


def test_outputs_shapes_and_projection_head():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params()).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, 64, 64), 2)
    assert out.features.shape == (3, 512) and out.embedding.shape == (3, 256)
    assert out.rotmats.shape == (3, 24, 3, 3) and out.betas.shape == (3, 10) and out.cam.shape == (3, 3)
    torch.testing.assert_close(out.rotmats @ out.rotmats.transpose(-1, -2), torch.eye(3).expand(3, 24, 3, 3), atol=1e-5, rtol=0)


def test_regressor_starts_from_mean_params():
    mean = mean_params()
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean).eval()
    for dec in (net.regressor.decpose, net.regressor.decshape, net.regressor.deccam):
        torch.nn.init.zeros_(dec.weight)
        torch.nn.init.zeros_(dec.bias)
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64), 0)
    torch.testing.assert_close(out.pose6d, torch.from_numpy(mean.pose6d).expand(2, -1))
    torch.testing.assert_close(out.cam, torch.from_numpy(mean.cam).expand(2, -1))
    assert net.regressor.decpose.weight.numel() == 1024 * 144


def test_gradient_reaches_only_the_used_alpha_row():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params()).train()
    out = net(torch.randn(2, 3, 64, 64), 3)
    (out.pose6d.sum() + out.embedding.sum()).backward()
    assert net.backbone.layer2.alphas["3"].grad.abs().sum() > 0
    assert net.backbone.layer2.alphas["1"].grad is None


def test_baseline_uses_one_frozen_row():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64, resolution_aware=False), mean_params()).eval()
    net.backbone.layer2.alphas["4"].data.fill_(0.2)  # ignored by the baseline
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x, 4).pose6d, net(x, 0).pose6d)
    assert not any(p.requires_grad for n, p in net.named_parameters() if ".alphas." in n)


def test_bad_range_index():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params()).eval()
    with pytest.raises(ValueError):
        net(torch.randn(1, 3, 64, 64), 5)
