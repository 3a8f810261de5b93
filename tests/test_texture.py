"""Texture network: global context module, gradients through the renderer, training, CLI outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.config import BodyConfig
from lrpose.models.checkpoint import load_texture, load_train_state
from lrpose.models.texture import GlobalContext, TexGlo, TexGloConfig
from lrpose.render import rasterize, sample_texture
from lrpose.training.synth import SynthConfig, generate
from lrpose.training.texture import TextureCrops, TextureTrainConfig, evaluate_texture, train_texture

TINY = dict(input_size=32, tex_size=16, width=4, depth=2, reduce=2, hidden=8)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "person_64px.png"


@pytest.fixture(scope="module")
def tex_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("texdata")
    generate(SynthConfig(kind="crops", n=6, shard_size=6, crop_size=96, tex_size=16, seed=3), BodyConfig(), out)
    return out


def test_global_context_shapes_and_summation_changes_features():
    gc = GlobalContext(channels=8, size=4, reduce=2, hidden=16)
    x = torch.randn(2, 8, 4, 4)
    assert gc(x).shape == x.shape
    torch.manual_seed(0)
    with_gc = TexGlo(TexGloConfig(**TINY)).eval()
    torch.manual_seed(0)
    without = TexGlo(TexGloConfig(**{**TINY, "global_context": False})).eval()
    without.load_state_dict({k: v for k, v in with_gc.state_dict().items() if not k.startswith("context.")})
    img = torch.randn(2, 3, 32, 32)
    fused, _ = with_gc.bottleneck_features(img)
    plain, _ = without.bottleneck_features(img)
    torch.testing.assert_close(fused - plain, with_gc.context(plain))  # point-wise summation
    assert (fused - plain).abs().max() > 1e-4
    with torch.no_grad():
        tex = with_gc(img)
    assert tex.shape == (2, 3, 16, 16) and 0 <= float(tex.min()) <= float(tex.max()) <= 1
    concat = TexGlo(TexGloConfig(**{**TINY, "fusion": "concat"}))
    assert concat(img).shape == (2, 3, 16, 16)


def test_gradient_reaches_the_network_through_the_renderer():
    torch.manual_seed(0)
    net = TexGlo(TexGloConfig(**TINY)).double().eval()
    verts = torch.tensor([[[1.0, 1.0, 1.0], [10.0, 1.0, 1.0], [1.0, 10.0, 1.0]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    uv = torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.2, 0.9]], dtype=torch.float64)
    frags = rasterize(verts, faces, 12, 12)
    target = torch.rand(1, 12, 12, 3, dtype=torch.float64)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    weight = net.out.weight

    def loss() -> torch.Tensor:
        return ((sample_texture(frags, uv, faces, net(x)) - target) ** 2 * frags.mask[..., None]).sum()

    loss().backward()
    g = weight.grad[1, 2, 0, 0].item()
    eps = 1e-6
    with torch.no_grad():
        weight[1, 2, 0, 0] += eps
        up = loss().item()
        weight[1, 2, 0, 0] -= 2 * eps
        down = loss().item()
        weight[1, 2, 0, 0] += eps
    assert abs(g) > 1e-6
    assert abs((up - down) / (2 * eps) - g) < 1e-6 * max(1.0, abs(g))


def test_tiny_training_lowers_uv_l1(tex_data, tmp_path):
    body = load_body()
    cfg = TextureTrainConfig(data=str(tex_data), out=str(tmp_path), steps=30, batch_size=4, lr=3e-3, render_size=48, input_size=32,
                             tex_size=16, width=8, ckpt_every=100)  # fmt: skip
    data = TextureCrops(tex_data)
    torch.manual_seed(cfg.seed)
    before = evaluate_texture(TexGlo(TexGloConfig(input_size=32, tex_size=16, width=8)), body, data, render_size=48)
    net, info = load_texture(train_texture(cfg, body))
    after = evaluate_texture(net, body, data, render_size=48)
    assert info.trained and info.kind == "texture" and info.body_id == body.body_id and after["samples"] == 6
    assert after["uv_l1"] < 0.8 * before["uv_l1"], (before, after)
    assert (tmp_path / "loss.png").exists()


def test_image_texture_outputs_load_in_trimesh(tex_data, tmp_path, capsys):
    body = load_body()
    cfg = TextureTrainConfig(
        data=str(tex_data), out=str(tmp_path / "run"), steps=1, batch_size=2, render_size=32, input_size=32, tex_size=16, width=4
    )
    ckpt = train_texture(cfg, body)
    assert main(["image", str(EXAMPLE), "--out", str(tmp_path / "o"), "--texture", "--texture-weights", str(ckpt)]) == 0
    files = {p.name for p in (tmp_path / "o").iterdir()}
    assert {"person_64px.obj", "person_64px.mtl", "person_64px_texture.png", "person_64px_3view.png"} <= files
    mesh = trimesh.load(tmp_path / "o" / "person_64px.obj", process=False)
    assert len(mesh.faces) == len(body.faces)
    assert np.asarray(mesh.visual.material.image).shape[:2] == (16, 16)
    up = mesh.vertices[:, 1].max() - mesh.vertices[:, 1].min()
    assert up > 1.0  # exported upright (y up), person-sized
    import cv2

    assert cv2.imread(str(tmp_path / "o" / "person_64px_3view.png")).shape == (256, 768, 3)
    assert main(["eval", "--task", "texture", "--data", str(tex_data), "--weights", str(ckpt)]) == 0
    assert "UV L1" in capsys.readouterr().out


def test_reid_option_needs_weights(tex_data, tmp_path, capsys):
    args = ["train", "texture", "--data", str(tex_data), "--out", str(tmp_path / "run"), "--steps", "1", "--reid-weight", "0.5"]
    assert main(args) == 1
    assert "needs --reid-weights" in capsys.readouterr().err


def test_pedestrian_folder_with_masks_and_rscnet_meshes(tex_data, tmp_path):
    import cv2

    from lrpose.models.checkpoint import save
    from lrpose.models.rscnet import RSCNet, RSCNetConfig
    from tests.test_models import mean_params

    z = np.load(sorted(tex_data.glob("crops_*.npz"))[0])
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for i in range(3):  # pedestrian-like 2:1 crops
        cv2.imwrite(str(tmp_path / "img" / f"p{i}.jpg"), cv2.cvtColor(z["images"][i][:, 24:72], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "mask" / f"p{i}.png"), z["mask"][i][:, 24:72].astype(np.uint8) * 255)
    rsc = tmp_path / "rsc.pt"
    save(rsc, RSCNet(RSCNetConfig(depth=18, input_size=32), mean_params()), "standin-anny:test")
    cfg = TextureTrainConfig(data=str(tmp_path / "img"), out=str(tmp_path / "run"), steps=2, batch_size=2, render_size=32, input_size=32,
                             tex_size=16, width=4, masks=str(tmp_path / "mask"), mesh_weights=str(rsc))  # fmt: skip
    train_texture(cfg, load_body())
    import csv

    rows = list(csv.DictReader((tmp_path / "run" / "train_log.csv").open()))
    assert len(rows) == 2 and float(rows[0]["uv_l1"]) == 0.0 and np.isfinite(float(rows[-1]["loss"]))
    from lrpose.errors import InputError

    with pytest.raises(InputError, match="--masks DIR and --weights"):
        train_texture(TextureTrainConfig(data=str(tmp_path / "img"), out=str(tmp_path / "x")), load_body())


def test_fusing_a_track_prefers_visible_large_frontal_frames():
    from lrpose.textured import TextureFusion, frame_weight

    flip = np.diag([1.0, -1.0, -1.0])  # facing the camera
    back = np.diag([-1.0, -1.0, 1.0])  # turned away
    assert frame_weight(flip, 224) == 1.0 and frame_weight(back, 224) == 0.5
    assert frame_weight(flip, 56) == 0.25
    tex = np.zeros((2, 2, 2, 3), np.uint8)
    tex[0] = 200
    tex[1] = 100
    vis = np.zeros((2, 2, 2), bool)
    vis[0, 0, 0] = True  # texel (0,0): frame 0 only
    vis[:, 0, 1] = True  # texel (0,1): both frames
    fusion = TextureFusion(2)
    for t, v, x in zip(tex, vis, (1.0, 3.0), strict=True):
        fusion.add(t, v, x)
    fused = fusion.result()
    assert fused[0, 0, 0] == 200 and fused[0, 1, 0] == 125  # (200*1 + 100*3) / 4
    assert fused[1, 1, 0] == 125  # never seen: weighted mean of all frames


def test_crashed_run_resumes_exactly_and_logs_each_step_once(tex_data, tmp_path):
    """A run that dies (not Ctrl-C) after its step-2 checkpoint, with step 3 already logged, resumes
    from step 2 to the same weights as a straight run; its log holds each step once."""
    import csv

    from lrpose.errors import InputError

    body = load_body()

    def cfg(out: str, **kw) -> TextureTrainConfig:
        return TextureTrainConfig(data=str(tex_data), out=str(tmp_path / out), steps=4, batch_size=2, render_size=32, input_size=32,
                                  tex_size=16, width=4, ckpt_every=2, **kw)  # fmt: skip

    straight, _ = load_texture(train_texture(cfg("a"), body))

    def die_at_3(step, total, parts):
        if step == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        train_texture(cfg("b"), body, progress=die_at_3)
    ckpt = tmp_path / "b" / "last.pt"
    assert load_train_state(ckpt)["step"] == 2
    with pytest.raises(InputError, match="different settings"):
        train_texture(cfg("b", lr=1e-3), body, resume=ckpt)
    resumed, info = load_texture(train_texture(cfg("b"), body, resume=ckpt))
    assert [int(r["step"]) for r in csv.DictReader((tmp_path / "b" / "train_log.csv").open())] == [1, 2, 3, 4]
    assert info.trained and info.body_id == body.body_id and load_train_state(ckpt)["step"] == 4
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
