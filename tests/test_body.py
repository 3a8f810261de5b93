"""Body model: the shipped stand-in poses correctly; real SMPL pickles load safely."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

from lrpose import assets
from lrpose.body import H36M_TO_LSP14, SMPL_JOINT_NAMES, BodyModel, load_body
from lrpose.body_files import read_body_file
from lrpose.config import BodyConfig
from lrpose.errors import AssetFormatError, AssetNotFoundError, ConfigError, LrposeError
from lrpose.geometry import axis_angle_to_rotmat
from tests.fake_smpl import write_fake_smpl


@pytest.fixture(scope="module")
def standin() -> BodyModel:
    return BodyModel.from_standin(assets.shipped_dirs()[0] / "standin_body.npz")


def test_default_is_standin(standin):
    body = load_body()
    assert body.name == "standin" and body.body_id == standin.body_id
    assert body.num_vertices == 13718 and body.faces.shape[1] == 3
    assert body.uv is not None and body.uv_faces.shape == body.faces.shape


def test_standin_tpose_is_symmetric_and_human_sized(standin):
    out = standin.forward_axis_angle(torch.zeros(1, 72))
    j, v = out.joints[0], out.vertices[0]
    left = [i for i, n in enumerate(SMPL_JOINT_NAMES) if n.startswith("left_")]
    right = [SMPL_JOINT_NAMES.index(SMPL_JOINT_NAMES[i].replace("left_", "right_")) for i in left]
    mirrored = j[right] * torch.tensor([-1.0, 1.0, 1.0])
    assert (j[left] - mirrored).norm(dim=-1).max() < 1e-3  # 1 mm
    assert 1.6 < float(v[:, 1].max() - v[:, 1].min()) < 1.8
    # SMPL axes: left side is +x, head is +y, arms horizontal in the T-pose
    assert j[16, 0] > 0.1 and j[15, 1] > j[0, 1] + 0.4
    assert abs(float(j[20, 1] - j[16, 1])) < 0.03 and j[20, 0] > 0.6


def test_standin_elbow_bend_moves_wrist_where_geometry_says(standin):
    rest = standin.forward_axis_angle(torch.zeros(1, 72))
    pose = torch.zeros(1, 72)
    pose[0, 18 * 3 + 1] = -math.pi / 2  # left elbow, -90 deg about +y: forearm +x -> +z
    bent = standin.forward_axis_angle(pose)
    elbow, wrist0 = rest.joints[0, 18], rest.joints[0, 20]
    r = axis_angle_to_rotmat(pose[0, 54:57])
    expected = elbow + r @ (wrist0 - elbow)
    torch.testing.assert_close(bent.joints[0, 20], expected, atol=1e-5, rtol=0)
    assert bent.joints[0, 20, 2] - elbow[2] > 0.2  # in front of the elbow
    # vertices skinned only to the wrist/hand move rigidly with the forearm
    w = standin.layer.lbs_weights
    hand = (w[:, 20] + w[:, 22]) > 0.999
    assert hand.sum() > 50
    moved = elbow + (rest.vertices[0, hand] - elbow) @ r.T
    torch.testing.assert_close(bent.vertices[0, hand], moved, atol=1e-5, rtol=0)
    # the other arm does not move
    torch.testing.assert_close(bent.joints[0, 21], rest.joints[0, 21])


def test_standin_beta0_makes_taller(standin):
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0
    v = standin.forward(torch.eye(3).expand(2, 23, 3, 3), torch.eye(3).expand(2, 3, 3), betas).vertices
    heights = v[..., 1].max(1).values - v[..., 1].min(1).values
    assert heights[1] > heights[0] + 0.05


def test_standin_eval_joints_follow_spin_semantics(standin):
    out = standin.forward_axis_angle(torch.zeros(1, 72))
    lsp = standin.lsp_joints(out.vertices)[0]
    assert lsp.shape == (14, 3)
    j = out.joints[0]
    # LSP order: R ankle, R knee, R hip, L hip, L knee, L ankle, R wrist, R elbow, R shoulder, L shoulder, ...
    smpl_of_lsp = [8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20]
    assert (lsp[:12] - j[smpl_of_lsp]).norm(dim=-1).max() < 1e-5
    assert lsp[13, 1] > j[15, 1]  # head top above the head joint
    assert len(H36M_TO_LSP14) == 14


def test_standin_metadata_documents_fit(standin):
    data = read_body_file(assets.shipped_dirs()[0] / "standin_body.npz")
    meta = json.loads(str(data["meta"]))
    assert meta["joint_fit_error_mm_mean"] < 5.0
    assert set(meta["vertex_ids"]) >= {"nose", "LHeel", "rthumb"}


def test_fake_smpl_pickle_with_chumpy_loads(tmp_path, monkeypatch):
    smpl_dir = tmp_path / "smpl"
    smpl_dir.mkdir()
    data = write_fake_smpl(smpl_dir / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl")
    assert b"chumpy.ch" in (smpl_dir / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl").read_bytes()
    monkeypatch.setenv("LRPOSE_SMPL_DIR", str(smpl_dir))
    body = load_body()
    assert body.name == "smpl" and body.body_id.startswith("smpl-neutral:")
    out = body.forward_axis_angle(torch.zeros(1, 72, dtype=torch.float32))
    # J_regressor picks vertex j for joint j: zero-pose joints are those template vertices
    torch.testing.assert_close(out.joints[0], torch.tensor(data["v_template"][:24], dtype=torch.float32))
    betas = torch.zeros(1, 10)
    betas[0, 3] = 1.0
    shaped = body.forward_axis_angle(torch.zeros(1, 72), betas).vertices[0]
    expected = data["v_template"] + data["shapedirs"].x[:, :, 3]
    torch.testing.assert_close(shaped, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)
    with pytest.raises(AssetNotFoundError):
        body.lsp_joints(out.vertices)  # no J_regressor_h36m.npy beside it


def test_smpl_h36m_regressor_beside_file_is_used(tmp_path):
    write_fake_smpl(tmp_path / "SMPL_NEUTRAL.pkl")
    reg = np.zeros((17, 6890), np.float32)
    reg[np.arange(17), np.arange(17) + 100] = 1.0
    np.save(tmp_path / "J_regressor_h36m.npy", reg)
    body = load_body(BodyConfig(smpl=tmp_path))
    v = body.forward_axis_angle(torch.zeros(1, 72)).vertices
    torch.testing.assert_close(body.h36m_joints(v)[0], v[0, 100:117])


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os_system", "eval"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload):
    marker = tmp_path / "pwned"
    obj = _Evil(str(marker)) if payload == "os_system" else {"v_template": _EvalPayload(str(marker))}
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(AssetFormatError, match="refusing to load global"):
        load_body(BodyConfig(smpl=tmp_path))
    assert not marker.exists()


class _EvalPayload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w')",))


def test_missing_smpl_dir_gives_exact_error(monkeypatch):
    monkeypatch.setenv("LRPOSE_SMPL_DIR", "/nonexistent/smpl")
    with pytest.raises(AssetNotFoundError) as e:
        load_body()
    assert str(e.value) == (
        "SMPL body model (neutral) (SMPL_NEUTRAL.pkl or SMPL_NEUTRAL.npz or basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl "
        "or basicModel_neutral_lbs_10_207_0_v1.0.0.pkl) not found. Searched: $LRPOSE_SMPL_DIR /nonexistent/smpl "
        "(does not exist). " + assets.SMPL_HOW_TO
    )


def test_npz_with_pickled_object_is_refused(tmp_path):
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", v_template=np.array([object()], dtype=object))
    with pytest.raises(AssetFormatError, match="pickled arrays are refused"):
        load_body(BodyConfig(smpl=tmp_path / "SMPL_NEUTRAL.npz"))


def test_gender_needs_real_smpl():
    with pytest.raises(ConfigError, match="gender-neutral"):
        load_body(BodyConfig(gender="male"))
    with pytest.raises(LrposeError):
        load_body(BodyConfig(gender="robot"))


def test_fast_path_without_pose_correctives_matches_smplx(standin):
    assert not standin.has_pose_correctives
    torch.manual_seed(0)
    pose = torch.randn(3, 72) * 0.4
    betas = torch.randn(3, 10)
    transl = torch.randn(3, 3)
    rot = axis_angle_to_rotmat(pose.view(3, 24, 3))
    fast = standin(rot[:, 1:], rot[:, 0], betas, transl)
    ref = standin.layer(betas=betas, body_pose=rot[:, 1:], global_orient=rot[:, :1], transl=transl)
    torch.testing.assert_close(fast.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.joints, ref.joints[:, :24], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.extra_joints, ref.joints[:, 24:], atol=1e-5, rtol=0)


def test_bodies_with_pose_correctives_use_smplx_lbs(standin):
    data = dict(read_body_file(assets.shipped_dirs()[0] / "standin_body.npz"))
    data["posedirs"] = np.random.default_rng(0).normal(0, 1e-3, (standin.num_vertices, 3, 207)).astype(np.float32)
    body = BodyModel(data, "standin", "standin-correctives", json.loads(str(data["meta"]))["vertex_ids"], data["J_regressor_h36m"])
    assert body.has_pose_correctives
    zero = torch.zeros(1, 72)
    torch.testing.assert_close(body.forward_axis_angle(zero).vertices, standin.forward_axis_angle(zero).vertices, atol=1e-6, rtol=0)
    bent = torch.zeros(1, 72)
    bent[0, 4 * 3] = 1.0  # left knee
    diff = (body.forward_axis_angle(bent).vertices - standin.forward_axis_angle(bent).vertices).abs().max()
    assert diff > 1e-4  # the correctives are applied


def test_posed_j24_skins_only_what_the_keypoints_read_with_the_same_numbers(standin):
    from lrpose.geometry import axis_angle_to_rotmat

    torch.manual_seed(3)
    rot = axis_angle_to_rotmat(torch.randn(4, 24, 3) * 0.6)
    betas = torch.randn(4, 10)
    full = standin.spin_j24(standin(rot[:, 1:], rot[:, 0], betas))
    fast = standin.posed_j24(rot[:, 1:], rot[:, 0], betas)
    assert fast.shape == (4, 24, 3) and (fast - full).abs().max() < 1e-5
    r = rot.clone().requires_grad_(True)
    g_full = torch.autograd.grad(standin.spin_j24(standin(r[:, 1:], r[:, 0], betas)).square().sum(), r)[0]
    g_fast = torch.autograd.grad(standin.posed_j24(r[:, 1:], r[:, 0], betas).square().sum(), r)[0]
    assert torch.allclose(g_full, g_fast, atol=1e-4)
