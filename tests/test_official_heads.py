"""Official checkpoints give the official networks' outputs: a state dict in each official key layout
(RSC-Net's ``RSC-Net.pt``, SPIN's ``model_checkpoint.pt``) with seeded random weights, loaded through
lrpose, against an independent plain-torch forward written here from the official definitions
(``xuxy09/RSC-Net`` and ``nkolot/SPIN`` ``models/hmr.py``): ResNet-50 bottlenecks (RSC-Net: branch
scaled by the range's alpha before the residual sum), 7x7 average pool, 3 regressor iterations of
concat(features, pose, shape, cam) -> fc1 -> [ReLU, RSC-Net only] -> dropout -> fc2 -> [ReLU] ->
dropout -> residual decpose/decshape/deccam, rot6d -> rotation matrix by Gram-Schmidt."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrpose.models.checkpoint import load_rscnet
from lrpose.resolution import NUM_RANGES

COUNTS = (3, 4, 6, 3)  # ResNet-50
TOL = 1e-4


def official_state_dict(layout: str, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights under the official names of ``layout`` ('rscnet' or 'spin')."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (k * k * cout)) ** 0.5

    def bn(name: str, c: int, gain: float = 1.0) -> None:
        sd[f"{name}.weight"] = (torch.rand(c, generator=g) + 0.5) * gain
        sd[f"{name}.bias"] = torch.rand(c, generator=g) * 0.2 - 0.1
        sd[f"{name}.running_mean"] = torch.rand(c, generator=g) * 0.2 - 0.1
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(100)

    def linear(name: str, cout: int, cin: int) -> None:
        bound = cin**-0.5
        sd[f"{name}.weight"] = (torch.rand(cout, cin, generator=g) * 2 - 1) * bound
        sd[f"{name}.bias"] = (torch.rand(cout, generator=g) * 2 - 1) * bound

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for s, n in enumerate(COUNTS, start=1):
        planes = 64 * 2 ** (s - 1)
        for k in range(n):
            p = f"layer{s}.hmr_layer.{k}" if layout == "rscnet" else f"layer{s}.{k}"
            conv(f"{p}.conv1", planes, cin, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4, 0.2)  # small residual branches keep the activations O(1), like a trained net
            if k == 0:
                conv(f"{p}.downsample.0", planes * 4, cin, 1)
                bn(f"{p}.downsample.1", planes * 4, 0.5)
            cin = planes * 4
        if layout == "rscnet":
            for r in range(NUM_RANGES):
                sd[f"layer{s}.alphas.{r}"] = torch.rand(n, 1, 1, 1, 1, generator=g) + 0.5
    if layout == "rscnet":
        linear("layer4_mlp.0", 1024, 2048)
        linear("layer4_mlp.2", 256, 1024)
    linear("fc1", 1024, 2048 + 144 + 13)
    linear("fc2", 1024, 1024)
    linear("decpose", 144, 1024)
    linear("decshape", 10, 1024)
    linear("deccam", 3, 1024)
    sd["init_pose"] = torch.randn(1, 144, generator=g)
    sd["init_shape"] = torch.randn(1, 10, generator=g) * 0.5
    sd["init_cam"] = torch.tensor([[0.9, 0.0, 0.0]])
    return sd


def _bn(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    mean, var = sd[f"{name}.running_mean"], sd[f"{name}.running_var"]
    return F.batch_norm(x, mean, var, sd[f"{name}.weight"], sd[f"{name}.bias"], False, 0.0, 1e-5)


def rot6d_to_rotmat_reference(x: torch.Tensor) -> torch.Tensor:
    """SPIN's decoding: view (B*24, 3, 2), Gram-Schmidt on the two columns, third = cross product."""
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1)
    b2 = F.normalize(a2 - torch.einsum("bi,bi->b", b1, a2).unsqueeze(-1) * b1)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack((b1, b2, b3), dim=-1)


def official_forward(sd: dict, x: torch.Tensor, layout: str, scale: int, relu: bool | None = None) -> dict[str, torch.Tensor]:
    """The official HMR forward (eval mode) of ``layout`` over the state dict ``sd``; ``relu``
    overrides the layout's head (RSC-Net: ReLU after fc1/fc2, SPIN: none)."""
    relu = (layout == "rscnet") if relu is None else relu
    h = F.max_pool2d(F.relu(_bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), sd, "bn1")), 3, 2, 1)
    for s, n in enumerate(COUNTS, start=1):
        for k in range(n):
            p = f"layer{s}.hmr_layer.{k}" if layout == "rscnet" else f"layer{s}.{k}"
            stride = 2 if (k == 0 and s > 1) else 1
            out = F.relu(_bn(F.conv2d(h, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1"))
            out = F.relu(_bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn2"))
            out = _bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3")
            residual = h
            if k == 0:
                residual = _bn(F.conv2d(h, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
            if layout == "rscnet":
                out = sd[f"layer{s}.alphas.{scale}"][k] * out
            h = F.relu(out + residual)
    xf = F.avg_pool2d(h, 7, stride=1).reshape(x.shape[0], -1)
    pose, shape, cam = (sd[k].expand(x.shape[0], -1) for k in ("init_pose", "init_shape", "init_cam"))
    for _ in range(3):
        xc = F.linear(torch.cat([xf, pose, shape, cam], 1), sd["fc1.weight"], sd["fc1.bias"])
        xc = F.relu(xc) if relu else xc
        xc = F.linear(xc, sd["fc2.weight"], sd["fc2.bias"])
        xc = F.relu(xc) if relu else xc
        pose = F.linear(xc, sd["decpose.weight"], sd["decpose.bias"]) + pose
        shape = F.linear(xc, sd["decshape.weight"], sd["decshape.bias"]) + shape
        cam = F.linear(xc, sd["deccam.weight"], sd["deccam.bias"]) + cam
    out = {"features": xf, "rotmats": rot6d_to_rotmat_reference(pose).reshape(-1, 24, 3, 3), "betas": shape, "cam": cam}
    if layout == "rscnet":
        hidden = F.relu(F.linear(xf, sd["layer4_mlp.0.weight"], sd["layer4_mlp.0.bias"]))
        out["embedding"] = F.linear(hidden, sd["layer4_mlp.2.weight"], sd["layer4_mlp.2.bias"])
    return out


@pytest.mark.parametrize("layout", ["rscnet", "spin"])
def test_official_layouts_match_the_official_forward_at_every_range(tmp_path, layout):
    sd = official_state_dict(layout, seed=11)
    path = tmp_path / ("RSC-Net.pt" if layout == "rscnet" else "model_checkpoint.pt")
    if layout == "rscnet":
        torch.save(sd, path)  # the release is a bare state dict (loaded with load_state_dict)
    else:
        torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 2, "total_step_count": 10}, path)
    model, info = load_rscnet(path)
    assert info.source == ("official-rscnet" if layout == "rscnet" else "spin")
    assert model.config.head == layout
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    worst = 0.0
    with torch.no_grad():
        for scale in range(NUM_RANGES):
            ref = official_forward(sd, x, layout, scale if layout == "rscnet" else 0)
            out = model(x, scale)
            for name, want in ref.items():
                got = getattr(out, name)
                err = float((got - want).abs().max())
                worst = max(worst, err)
                assert err <= TOL, (scale, name, err)
            assert float(ref["betas"].abs().max()) > 0.1 and float(ref["cam"].abs().max()) > 0.1  # not trivially small
        if layout == "spin":  # the head matters: the RSC-Net head (with ReLU) on SPIN weights is far off
            wrong = official_forward(sd, x, "spin", 0, relu=True)
            assert float((wrong["betas"] - ref["betas"]).abs().max()) > 0.05
            assert float((wrong["rotmats"] - ref["rotmats"]).abs().max()) > 0.05
    print(f"{layout}: worst error {worst:.2e}")
