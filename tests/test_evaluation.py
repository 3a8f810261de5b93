"""Evaluation protocol: official vs OpenCV degradation, the MPJPE root (H36M joint 0 vs hips),
gendered ground truth (3DPW) and the ``lrpose eval`` options that choose them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lrpose.body import H36M_TO_LSP14, load_body
from lrpose.config import BodyConfig
from lrpose.resolution import degrade
from lrpose.training.data import Sample, SpinDataset
from lrpose.training.evaluation import _ground_truth, data_has_gender, eval_joints, gendered_bodies
from tests.fake_smpl import write_fake_smpl


def _crop(seed: int = 0) -> np.ndarray:
    """A 224 px test crop with structure at several scales and values 20..230 (not full range)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:224, 0:224] / 224.0
    img = np.stack([np.sin(9 * x + 3 * y), np.cos(17 * y), np.sin(40 * x * y)], -1) * 90 + 125
    img += rng.normal(0, 8, img.shape)
    return img.clip(20, 230).astype(np.uint8)


def test_official_degradation_is_bytescale_then_pillow_bicubic_down_and_up():
    img = _crop()
    lo, hi = int(img.min()), int(img.max())
    stretched = ((img.astype(np.float32) - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)
    small = Image.fromarray(stretched).resize((32, 32), Image.Resampling.BICUBIC)
    want = np.asarray(small.resize((224, 224), Image.Resampling.BICUBIC))
    got = degrade(img, 32, 224, "official")
    assert got.dtype == np.uint8 and got.shape == (224, 224, 3)
    assert np.array_equal(got, want)
    assert np.array_equal(degrade(img, 224, 224, "official"), img)  # the full-resolution view is untouched
    opencv = degrade(img, 32, 224, "opencv")
    diff = np.abs(got.astype(float) - opencv.astype(float))
    assert 1.0 < diff.mean() < 40.0  # the two methods differ (here mostly the contrast stretch), but not wildly
    with pytest.raises(ValueError, match="official, opencv"):
        degrade(img, 32, 224, "nearest")


def _smpl_folder(tmp_path, genders=("NEUTRAL", "MALE", "FEMALE")):
    for k, g in enumerate(genders):
        write_fake_smpl(tmp_path / f"SMPL_{g}.pkl", seed=k)
    reg = np.zeros((17, 6890), np.float32)
    reg[np.arange(17), np.arange(17) + 100] = 1.0
    np.save(tmp_path / "J_regressor_h36m.npy", reg)
    return tmp_path


def _sample(pose: np.ndarray, gender: str = "", s3: np.ndarray | None = None, has_smpl: float = 1.0) -> Sample:
    s = np.zeros((24, 4), np.float32) if s3 is None else s3
    return Sample(np.zeros((224, 224, 3), np.uint8), np.zeros((24, 3)), s, pose, np.zeros(10, np.float32), has_smpl, 1.0, gender)


def test_eval_joints_subtract_h36m_joint_0_or_the_hips():
    body = load_body()
    pose = torch.zeros(1, 72)
    pose[0, 3 * 1 + 2] = 0.6  # left hip bent sideways: the hips' midpoint moves away from joint 0
    v = body.forward_axis_angle(pose).vertices
    h36m = body.h36m_joints(v)
    at_h36m = eval_joints(body, v, torch.tensor([False]))
    torch.testing.assert_close(at_h36m, h36m[:, list(H36M_TO_LSP14)] - h36m[:, [0]])
    at_hips = eval_joints(body, v, torch.tensor([True]))
    assert float(at_hips[0, [2, 3]].mean(0).abs().max()) < 1e-7
    shift_mm = float((at_h36m - at_hips)[0, 0].norm()) * 1000
    assert shift_mm > 1.0  # the two roots are different points of the body


def test_keypoint_ground_truth_uses_the_s_pelvis_or_the_hips_without_one():
    body = load_body()
    s3 = np.zeros((24, 4), np.float32)
    s3[:14, :3] = np.random.default_rng(1).normal(size=(14, 3))
    s3[14] = [0.5, 0.5, 0.5, 1.0]
    no_pelvis = s3.copy()
    no_pelvis[14, 3] = 0
    gt, _, _, at_hips = _ground_truth(body, [_sample(np.zeros(72, np.float32), s3=s, has_smpl=0.0) for s in (s3, no_pelvis)], "h36m", None)
    assert at_hips.tolist() == [False, True]
    np.testing.assert_allclose(gt[0].numpy(), s3[:14, :3] - s3[14, :3], atol=1e-6)
    np.testing.assert_allclose(gt[1].numpy(), s3[:14, :3] - s3[[2, 3], :3].mean(0), atol=1e-6)


def test_gendered_ground_truth_poses_each_sample_with_its_body(tmp_path):
    folder = _smpl_folder(tmp_path)
    neutral = load_body(BodyConfig(smpl=folder / "SMPL_NEUTRAL.pkl"))
    bodies, why = gendered_bodies(neutral, folder / "SMPL_NEUTRAL.pkl")  # --smpl naming the file: siblings beside it
    assert why == "" and set(bodies) == {"m", "f"} and bodies["m"].body_id.startswith("smpl-male:")
    pose = np.zeros(72, np.float32)
    pose[5] = 0.4
    samples = [_sample(pose, g) for g in ("m", "f", "")]
    _, verts, _, _ = _ground_truth(neutral, samples, "h36m", bodies)
    for k, b in enumerate((bodies["m"], bodies["f"], neutral)):
        want = b.forward_axis_angle(torch.from_numpy(pose)[None]).vertices[0]
        torch.testing.assert_close(verts[k], want)
    assert float((verts[0] - verts[2]).abs().max()) > 0.1  # the fake bodies differ


def test_gendered_bodies_missing_or_standin_say_why(tmp_path):
    folder = _smpl_folder(tmp_path, ("NEUTRAL", "MALE"))
    neutral = load_body(BodyConfig(smpl=folder))
    bodies, why = gendered_bodies(neutral, folder)
    assert bodies is None and "SMPL_FEMALE.pkl" in why and "SMPL_MALE.pkl" not in why
    bodies, why = gendered_bodies(load_body(), None)
    assert bodies is None and "stand-in" in why


def test_spin_npz_gender_is_read(tmp_path):
    n = 3
    np.savez(tmp_path / "3dpw.npz", imgname=np.array(["a.jpg"] * n), center=np.zeros((n, 2)), scale=np.ones(n),
             part=np.zeros((n, 24, 3)), gender=np.array(["m", "f", "x"]))  # fmt: skip
    data = SpinDataset(tmp_path / "3dpw.npz", tmp_path)
    assert data.genders == ["m", "f", ""] and data_has_gender(data)
    np.savez(tmp_path / "h36m.npz", imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)), scale=np.ones(1), part=np.zeros((1, 24, 3)))
    assert not data_has_gender(SpinDataset(tmp_path / "h36m.npz", tmp_path))


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    from lrpose.training.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("crops")
    generate(SynthConfig(kind="crops", n=4, shard_size=4, crop_size=64, tex_size=16, seed=2), BodyConfig(), out)
    return out


def test_cli_eval_protocol_options(crops, tiny, tmp_path, capsys):
    from lrpose.cli import main

    base = ["eval", "--data", str(crops), "--weights", str(tiny), "--resolutions", "224,32"]
    records = {}
    for degrade_method, pelvis in (("official", "h36m"), ("opencv", "h36m"), ("official", "hips")):
        out = tmp_path / f"{degrade_method}_{pelvis}.json"
        assert main([*base, "--degrade", degrade_method, "--pelvis", pelvis, "--json", str(out)]) == 0
        records[degrade_method, pelvis] = json.loads(out.read_text())
    first = records["official", "h36m"]
    assert first[0]["pelvis"] == "h36m" and first[0]["degrade"] == "official" and first[0]["ground_truth_body"] == "neutral"
    assert "pelvis h36m, degrade official" in capsys.readouterr().out
    by = {k: {r["resolution"]: r for r in v} for k, v in records.items()}
    assert by["official", "h36m"][32]["mpjpe"] != by["opencv", "h36m"][32]["mpjpe"]  # the degradation changes the input
    # the root changes MPJPE, not PA-MPJPE
    assert by["official", "h36m"][32]["mpjpe"] != by["official", "hips"][32]["mpjpe"]
    assert by["official", "h36m"][32]["pa_mpjpe"] == pytest.approx(by["official", "hips"][32]["pa_mpjpe"], rel=1e-6)
    assert main([*base, "--degrade", "area"]) == 1
    assert "--degrade must be official | opencv, not 'area'" in capsys.readouterr().err


def test_cli_eval_warns_once_when_gendered_ground_truth_is_unavailable(tiny, tmp_path, capsys):
    import cv2

    from lrpose.cli import main

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.full((240, 240, 3), 120, np.uint8))
    n = 2
    np.savez(tmp_path / "3dpw.npz", imgname=np.array(["a.png"] * n), center=np.full((n, 2), 120.0), scale=np.full(n, 1.12),
             part=np.zeros((n, 24, 3)), pose=np.zeros((n, 72)), shape=np.zeros((n, 10)), gender=np.array(["m", "f"]))  # fmt: skip
    out = tmp_path / "e.json"
    args = ["eval", "--data", str(tmp_path / "3dpw.npz"), "--img-root", str(tmp_path / "img"), "--weights", str(tiny)]
    assert main([*args, "--resolutions", "32", "--json", str(out)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: the data gives gender but the body is the stand-in")
    assert json.loads(out.read_text())[0]["ground_truth_body"] == "neutral"


class _FixedRoot(torch.nn.Module):
    """A stand-in RSC-Net that always answers the zero pose with identity global rotation (the body's front along
    +z, away from the camera)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"input_size": 32})()

    def forward(self, x: torch.Tensor, range_index: int):
        b = x.shape[0]
        rot = torch.eye(3).expand(b, 24, 3, 3).clone()
        return type("Out", (), {"rotmats": rot, "betas": torch.zeros(b, 10), "cam": torch.zeros(b, 3)})()


def test_facing_agreement_counts_bodies_turned_the_way_the_ground_truth_is():
    from lrpose.training.evaluation import evaluate

    away = np.zeros(72, np.float32)
    towards = away.copy()
    towards[1] = np.pi  # 180 degrees about y: the front points back at the camera
    samples = [_sample(away), _sample(towards), _sample(towards), _sample(away, has_smpl=0.0)]
    results = evaluate(_FixedRoot(), load_body(BodyConfig()), samples, [224, 32], batch_size=3)
    assert [r.facing for r in results] == [1 / 3, 1 / 3]  # only the first of the three SMPL-labelled samples agrees
