"""Synthetic data engine: ground-truth consistency, keypoints on the body, determinism, clips."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.config import BodyConfig
from lrpose.training.poses import motion_pose, sample_motion, sample_static_pose
from lrpose.training.preview import preview
from lrpose.training.synth import SynthConfig, generate

SMALL = SynthConfig(kind="crops", n=6, shard_size=4, crop_size=96, tex_size=32, seed=5)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    out = tmp_path_factory.mktemp("crops")
    files = generate(SMALL, BodyConfig(), out)
    return out, files


def test_crops_shards_shapes(crops):
    out, files = crops
    assert [f.name for f in files] == ["crops_00000.npz", "crops_00001.npz"]
    z = np.load(files[1])
    assert z["images"].shape == (2, 96, 96, 3) and z["images"].dtype == np.uint8
    assert z["S"].shape == (2, 24, 4) and z["part"].shape == (2, 24, 3) and z["pose"].shape == (2, 72)
    assert z["texture"].shape == (2, 32, 32, 3) and z["mask"].shape == (2, 96, 96)
    assert (out / "meta.json").exists()


def test_ground_truth_is_consistent_with_the_body_model(crops):
    """body(pose, betas) + trans reproduces S; part is S projected; cam is SPIN's weak perspective."""
    _, files = crops
    z = np.load(files[0])
    body = load_body()
    with torch.no_grad():
        out = body.forward_axis_angle(torch.from_numpy(z["pose"]), torch.from_numpy(z["betas"]), torch.from_numpy(z["trans"]))
    j24 = body.spin_j24(out).numpy()
    np.testing.assert_allclose(j24, z["S"][..., :3], atol=1e-4)
    f, s = 5000.0, 96
    proj = f * z["S"][..., :2] / z["S"][..., 2:3] + (s / 2 - 0.5)
    np.testing.assert_allclose(proj, z["part"][..., :2], atol=1e-3)
    np.testing.assert_allclose(z["cam"][:, 0], 2 * f / (s * z["trans"][:, 2]), rtol=1e-5)
    # weak perspective of the crop camera lands within 2 % of the crop of the perspective keypoints
    body_frame = out.joints.numpy() - z["trans"][:, None]
    weak = z["cam"][:, None, :1] * (body_frame[..., :2] + z["cam"][:, None, 1:])
    persp = f * out.joints.numpy()[..., :2] / out.joints.numpy()[..., 2:] / (s / 2)
    assert np.abs(weak - persp).max() < 0.04


def test_visible_keypoints_fall_on_the_rendered_body(tmp_path):
    cfg = SynthConfig(kind="crops", n=24, shard_size=24, crop_size=160, tex_size=32, seed=11)
    z = np.load(generate(cfg, BodyConfig(), tmp_path)[0])
    inside = total = 0
    for mask, part in zip(z["mask"], z["part"], strict=True):
        grown = np.zeros_like(mask)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(mask, dy, 0), dx, 1)
        for x, y, vis in part:
            if vis > 0:
                total += 1
                inside += bool(grown[int(round(y)), int(round(x))])
    assert total > 400
    assert inside / total >= 0.95, inside / total


def test_seed_determinism(tmp_path):
    cfg = SynthConfig(kind="crops", n=3, shard_size=3, crop_size=64, tex_size=16, seed=2)
    digest = [hashlib.sha256(generate(cfg, BodyConfig(), tmp_path / name)[0].read_bytes()).hexdigest() for name in ("a", "b")]
    assert digest[0] == digest[1]
    other = generate(SynthConfig(**{**cfg.__dict__, "seed": 3}), BodyConfig(), tmp_path / "c")[0]
    assert hashlib.sha256(other.read_bytes()).hexdigest() != digest[0]


def test_rerun_resumes_without_rewriting(tmp_path):
    cfg = SynthConfig(kind="crops", n=2, shard_size=1, crop_size=48, tex_size=16)
    first = generate(cfg, BodyConfig(), tmp_path)
    stamp = first[0].stat().st_mtime_ns
    first[1].unlink()
    again = generate(cfg, BodyConfig(), tmp_path)
    assert [p.name for p in again] == [p.name for p in first]
    assert first[0].stat().st_mtime_ns == stamp and first[1].exists()


def test_video_clip_and_ground_truth(tmp_path):
    cfg = SynthConfig(kind="video", n=1, width=160, height=120, fps=5, seconds=1.0, max_people=3, tex_size=16, seed=4)
    generate(cfg, BodyConfig(), tmp_path)
    with av.open(str(tmp_path / "clip_00000.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (120, 160, 3)
    z = np.load(tmp_path / "clip_00000.npz")
    t, n = z["present"].shape
    assert t == 5 and 1 <= n <= 3 and z["pose"].shape == (5, n, 72) and z["joints2d"].shape == (5, n, 24, 2)
    body = load_body()
    betas = torch.from_numpy(np.repeat(z["betas"][None], 5, 0).reshape(-1, 10))
    with torch.no_grad():
        out = body.forward_axis_angle(torch.from_numpy(z["pose"].reshape(-1, 72)), betas, torch.from_numpy(z["trans"].reshape(-1, 3)))
    np.testing.assert_allclose(out.joints.numpy().reshape(5, n, 24, 3), z["joints3d"], atol=1e-4)
    for ti, pi in zip(*np.nonzero(z["present"]), strict=True):
        x1, y1, x2, y2 = z["boxes"][ti, pi]
        jx, jy = z["joints2d"][ti, pi].T
        on = (jx >= 0) & (jx < 160) & (jy >= 0) & (jy < 120)
        assert ((jx[on] >= x1 - 1) & (jx[on] <= x2 + 1) & (jy[on] >= y1 - 1) & (jy[on] <= y2 + 1)).all()
    assert preview(tmp_path, "video").exists()


def test_pose_generators_stay_in_range():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = sample_static_pose(rng)
        assert p.shape == (24, 3) and np.isfinite(p).all()
        assert -2.1 < p[4, 0] <= 2.0 + 1e-9 and p[4, 0] >= 0  # knee flexes one way
    walk = sample_motion(rng, "walk")
    left = [motion_pose(walk, t)[1, 0] for t in np.linspace(0, 1 / walk.cadence_hz, 20)]
    right = [motion_pose(walk, t)[2, 0] for t in np.linspace(0, 1 / walk.cadence_hz, 20)]
    assert np.corrcoef(left, right)[0, 1] < -0.9  # legs in anti-phase


def test_cli_synth_and_bad_kind(tmp_path, capsys):
    assert main(["synth", "--kind", "crops", "--n", "2", "--shard-size", "2", "--crop-size", "48", "--tex-size", "16",
                 "--out", str(tmp_path), "--preview"]) == 0  # fmt: skip
    assert (tmp_path / "preview.png").exists()
    capsys.readouterr()
    assert main(["synth", "--kind", "nope", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --kind") and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_parallel_workers_give_identical_files(tmp_path):
    cfg = SynthConfig(kind="crops", n=4, shard_size=2, crop_size=48, tex_size=16, seed=9)
    one = generate(cfg, BodyConfig(), tmp_path / "one")
    two = generate(SynthConfig(**{**cfg.__dict__, "workers": 2}), BodyConfig(), tmp_path / "two")
    assert [a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True)] == [True, True]


def test_user_poses_and_backgrounds_are_used(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    poses = np.zeros((3, 72))
    poses[:, 3:] = rng.normal(0, 0.3, (3, 69))
    np.savez(tmp_path / "poses.npz", poses=poses)
    (tmp_path / "bg").mkdir()
    cv2.imwrite(str(tmp_path / "bg" / "wall.png"), np.full((50, 70, 3), (0, 0, 255), np.uint8))  # pure red (BGR)
    cfg = SynthConfig(kind="crops", n=6, shard_size=6, crop_size=48, tex_size=16, seed=1, poses=str(tmp_path / "poses.npz"),
                      backgrounds=str(tmp_path / "bg"))  # fmt: skip
    z = np.load(generate(cfg, BodyConfig(), tmp_path / "out")[0])
    for body_pose in z["pose"][:, 3:]:  # every sample's body pose is one of the given rows
        assert min(np.abs(body_pose - p[3:]).max() for p in poses) < 1e-4
    red = (z["images"][..., 0] > 200) & (z["images"][..., 1] < 40) & (z["images"][..., 2] < 40) & ~z["mask"]
    assert red.reshape(6, -1).mean(1).max() > 0.5  # at least one sample drew the user background
    from lrpose.errors import InputError

    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(InputError):
        generate(SynthConfig(kind="crops", n=1, poses=str(tmp_path / "bad.npz")), BodyConfig(), tmp_path / "x")


def test_clip_without_visible_people_is_drawn_again(tmp_path, monkeypatch, capsys):
    """A draw where nobody fits in the frame is retried from the next sub-seed; 20 empty draws are one error line."""
    from lrpose.training import synth

    cfg = SynthConfig(kind="video", n=1, width=160, height=120, fps=5, seconds=0.4, max_people=2, tex_size=16, seed=4)
    real_draw, real_place, draws = synth._draw_clip, synth._place_on_ground, []

    def counted(*a):
        draws.append(1)
        return real_draw(*a)

    monkeypatch.setattr(synth, "_draw_clip", counted)
    monkeypatch.setattr(synth, "_place_on_ground", lambda rng, cam: None if len(draws) <= 2 else real_place(rng, cam))
    gt = synth.make_clip(cfg, BodyConfig(), 0, tmp_path)
    k = len(draws) - 1  # the first two draws placed nobody (some later ones may place people out of sight)
    assert 2 <= k < synth.CLIP_ATTEMPTS and gt["present"].any()
    (tmp_path / "d").mkdir()
    direct = real_draw(cfg, BodyConfig(), np.random.default_rng([4, 0, 1, k]), 0, tmp_path / "d")
    assert np.array_equal(direct["boxes"], gt["boxes"]) and np.array_equal(direct["pose"], gt["pose"])  # that sub-seed's clip

    draws.clear()
    monkeypatch.setattr(synth, "_place_on_ground", lambda rng, cam: None)
    code = main(["synth", "--kind", "video", "--n", "1", "--width", "160", "--height", "120", "--seconds", "0.4", "--fps", "5",
                 "--tex-size", "16", "--out", str(tmp_path / "v")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(draws) == synth.CLIP_ATTEMPTS == 20
    assert len(err) == 1 and err[0].startswith("error: synthetic clip 0: no person was visible in 20 draws")
    assert not list((tmp_path / "v").glob("clip_*"))  # no video and no ground truth left behind
