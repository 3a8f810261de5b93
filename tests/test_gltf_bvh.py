"""Animated glTF and BVH exports: read back by independent readers, posed joints and vertices equal lrpose's."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from lrpose.animation import UPRIGHT, read_tracks, track_animation
from lrpose.body import load_body
from lrpose.bvh import euler_zxy, write_bvh
from lrpose.cli import main
from lrpose.files import save_npz
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.gltf import write_glb

VALIDATOR = Path(__file__).resolve().parent.parent / "tools" / "gltf"


def fake_track(body, track_id: int, frames: list[int], seed: int) -> dict[str, np.ndarray]:  # noqa: ANN001
    """A track file's arrays: bent limbs, a person facing roughly the camera, walking sideways."""
    g = torch.Generator().manual_seed(seed)
    t = len(frames)
    pose = torch.randn(t, 24, 3, generator=g) * 0.3
    pose[:, 0] = torch.tensor([np.pi, 0.0, 0.0]) + torch.randn(t, 3, generator=g) * 0.2
    rot = axis_angle_to_rotmat(pose)
    betas = torch.randn(t, 10, generator=g) * 0.5
    trans = torch.tensor([[0.3, 0.2, 12.0]]) + torch.arange(t)[:, None] * torch.tensor([[0.05, 0.0, 0.01]])
    return {
        "rotmats": rot.numpy(), "betas": betas.numpy(), "trans": trans.numpy(), "frame_ids": np.array(frames),
        "time_s": np.array(frames) / 10.0, "fps": np.array(10.0), "track_id": np.array(track_id),
        "focal_px": np.array(800.0), "image_size": np.array([320, 240]), "body_model": np.array(body.body_id),
    }  # fmt: skip


def lrpose_posed(body, track: dict[str, np.ndarray], betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(T, 24, 3) joints and (T, V, 3) vertices the way lrpose poses them, in the export world frame."""
    rot = torch.from_numpy(track["rotmats"]).float()
    out = body(rot[:, 1:], rot[:, 0], torch.from_numpy(betas).float()[None].expand(len(rot), 10))
    up = lambda x: (x.double().numpy() + track["trans"][:, None]) @ UPRIGHT.T  # noqa: E731
    return up(out.joints), up(out.vertices)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A results folder with two tracks (one with a gap) and its exports."""
    body = load_body()
    folder = tmp_path_factory.mktemp("run") / "clip"
    (folder / "tracks").mkdir(parents=True)
    tracks = {3: fake_track(body, 3, [0, 1, 2, 3, 4], 1), 7: fake_track(body, 7, [2, 3, 6, 7], 2)}
    for i, tr in tracks.items():
        save_npz(folder / "tracks" / f"{i:04d}.npz", tr)
    anims = read_tracks(folder, body)
    texture = np.zeros((16, 16, 3), np.uint8)
    texture[:8] = (200, 40, 40)  # top half red: the body's UV layout decides where it lands
    ok, png = cv2.imencode(".png", texture)
    write_glb(folder / "clip.glb", body, anims, {7: png.tobytes()})  # track 7 textured, track 3 plain
    for a in anims:
        write_bvh(folder / f"{a.track_id}.bvh", a)
    return body, folder, tracks, anims


def test_forward_kinematics_of_the_animation_is_lrposes_posed_body(run):
    body, _, tracks, anims = run
    for anim in anims:
        joints, _ = lrpose_posed(body, tracks[anim.track_id], anim.betas)
        np.testing.assert_allclose(anim.world_joints(), joints, atol=2e-5)


def _read_glb(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack("<4sII", data[:12])
    assert (magic, version, total) == (b"glTF", 2, len(data))
    n = struct.unpack("<I", data[12:16])[0]
    doc = json.loads(data[20 : 20 + n])
    return doc, data[20 + n + 8 :]


def _accessor(doc: dict, binary: bytes, i: int) -> np.ndarray:
    acc = doc["accessors"][i]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = {5126: np.float32, 5121: np.uint8, 5125: np.uint32}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
    return np.frombuffer(binary, dtype, acc["count"] * width, view["byteOffset"]).reshape(acc["count"], width)


def _quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])  # fmt: skip


def test_glb_read_back_and_skinned_by_the_spec_gives_lrposes_vertices(run):
    """An independent reader: node TRS from the animation at a key, joint world matrices, morph targets
    weighted by the node's weights, linear blend skinning with the inverse bind matrices."""
    body, folder, tracks, anims = run
    doc, binary = _read_glb(folder / "clip.glb")
    prim = doc["meshes"][0]["primitives"][0]
    base = _accessor(doc, binary, prim["attributes"]["POSITION"]).astype(np.float64)
    targets = np.stack([_accessor(doc, binary, t["POSITION"]) for t in prim["targets"]], -1)  # (V, 3, 10)
    joints = np.concatenate([_accessor(doc, binary, prim["attributes"][f"JOINTS_{i}"]) for i in (0, 1)], 1).astype(int)
    weights = np.concatenate([_accessor(doc, binary, prim["attributes"][f"WEIGHTS_{i}"]) for i in (0, 1)], 1)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)
    channels = {
        (c["target"]["node"], c["target"]["path"]): doc["animations"][0]["samplers"][c["sampler"]] for c in doc["animations"][0]["channels"]
    }
    names = [n["name"] for n in doc["nodes"]]
    assert names.count("video camera") == 1 and len(doc["skins"]) == 2
    textured = {n["name"]: doc["meshes"][n["mesh"]]["primitives"][0].get("material") for n in doc["nodes"] if "mesh" in n}
    assert textured == {"track3/body": None, "track7/body": 0} and doc["images"][0]["mimeType"] == "image/png"
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    png = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:8].mean((0, 1)).tolist() == [200, 40, 40]  # the PNG as given
    uv = _accessor(doc, binary, prim["attributes"]["TEXCOORD_0"])
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    for skin, anim in zip(doc["skins"], anims, strict=True):
        assert skin["name"] == f"track{anim.track_id}" and len(skin["joints"]) == 24
        assert names[skin["joints"][4]] == f"track{anim.track_id}/left_knee"
        ibm = _accessor(doc, binary, skin["inverseBindMatrices"]).reshape(24, 4, 4).transpose(0, 2, 1)
        mesh_node = next(n for n in doc["nodes"] if n.get("skin") == doc["skins"].index(skin))
        rest = base + targets @ np.array(mesh_node["weights"])
        _, verts = lrpose_posed(body, tracks[anim.track_id], anim.betas)
        times = _accessor(doc, binary, channels[(skin["joints"][0], "rotation")]["input"])[:, 0]
        np.testing.assert_allclose(times, anim.times, atol=1e-6)
        for k in (0, len(anim.times) - 1):
            world = np.zeros((24, 4, 4))
            for j, node in enumerate(skin["joints"]):
                n = doc["nodes"][node]
                q = _accessor(doc, binary, channels[(node, "rotation")]["output"])[k]
                t = _accessor(doc, binary, channels[(node, "translation")]["output"])[k] if j == 0 else np.array(n["translation"])
                local = np.eye(4)
                local[:3, :3], local[:3, 3] = _quat_to_rotmat(q.astype(np.float64)), t
                world[j] = local if anim.parents[j] < 0 else world[anim.parents[j]] @ local
            mats = world @ ibm  # (24, 4, 4)
            blended = np.einsum("vk,vkij->vij", weights, mats[joints])
            skinned = np.einsum("vij,vj->vi", blended[:, :3, :3], rest) + blended[:, :3, 3]
            dist, nearest = cKDTree(verts[k]).query(skinned)
            assert dist.max() < 1e-4  # metres: every (seam-split) vertex of the file sits on lrpose's posed vertex
            assert len(np.unique(nearest)) == verts.shape[1]  # and every vertex of lrpose's body is there
        # the body is hidden where the track has no results (track 7: frames 4-5 and before frame 2)
        vis = channels[(skin["joints"][0], "scale")]
        assert vis["interpolation"] == "STEP"
        keys = _accessor(doc, binary, vis["input"])[:, 0]
        on = _accessor(doc, binary, vis["output"])[:, 0]
        frames = tracks[anim.track_id]["frame_ids"]
        for f in range(8):
            t = f / 10.0 + 1e-6
            shown = on[np.searchsorted(keys, t, side="right") - 1] if t >= keys[0] else on[0]
            assert (shown == 1.0) == (f in frames), (anim.track_id, f)


@pytest.mark.skipif(
    shutil.which("node") is None or not (VALIDATOR / "node_modules" / "gltf-validator").is_dir(),
    reason="the Khronos validator is not installed (npm ci --prefix tools/gltf; CI does it)",
)
def test_khronos_validator_reports_no_errors_or_warnings(run):
    _, folder, _, _ = run
    res = subprocess.run(["node", str(VALIDATOR / "validate.mjs"), str(folder / "clip.glb")], capture_output=True, text=True, timeout=120)
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["errors"] == 0 and report["warnings"] == 0, report["messages"]
    assert report["info"]["hasSkins"] and report["info"]["animationCount"] == 1 and report["info"]["maxInfluences"] <= 8


def test_bvh_read_back_by_a_bvh_parser_gives_lrposes_joints(run):
    bvh = pytest.importorskip("bvh")
    body, folder, tracks, anims = run
    for anim in anims:
        mocap = bvh.Bvh((folder / f"{anim.track_id}.bvh").read_text())
        names = mocap.get_joints_names()
        assert names[0] == "pelvis" and len(names) == 24 and mocap.frame_time == pytest.approx(0.1)
        frames = tracks[anim.track_id]["frame_ids"]
        assert mocap.nframes == frames[-1] - frames[0] + 1  # a gap repeats the last result
        joints, _ = lrpose_posed(body, tracks[anim.track_id], anim.betas)
        for row, f in enumerate(frames - frames[0]):
            world, pos = {}, {}
            for name in names:
                parent = mocap.joint_parent(name)
                offset = np.array(mocap.joint_offset(name), np.float64)
                z, x, y = np.radians(mocap.frame_joint_channels(int(f), name, ["Zrotation", "Xrotation", "Yrotation"]))
                rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
                rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
                ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
                if parent is None:
                    pos[name] = np.array(mocap.frame_joint_channels(int(f), name, ["Xposition", "Yposition", "Zposition"]))
                    world[name] = rz @ rx @ ry
                else:
                    pos[name] = pos[parent.name] + world[parent.name] @ offset
                    world[name] = world[parent.name] @ rz @ rx @ ry
            got = np.stack([pos[n] for n in names])
            order = [anim.names.index(n) for n in names]
            assert np.abs(got - joints[row][order]).max() < 1e-4


def test_euler_round_trip():
    r = axis_angle_to_rotmat(torch.randn(50, 3, generator=torch.Generator().manual_seed(0))).double().numpy()
    z, x, y = np.radians(euler_zxy(r)).T
    c, s = np.cos, np.sin
    back = np.einsum("nij,njk,nkl->nil",
                     np.stack([[c(z), -s(z), 0 * z], [s(z), c(z), 0 * z], [0 * z, 0 * z, 1 + 0 * z]]).transpose(2, 0, 1),
                     np.stack([[1 + 0 * x, 0 * x, 0 * x], [0 * x, c(x), -s(x)], [0 * x, s(x), c(x)]]).transpose(2, 0, 1),
                     np.stack([[c(y), 0 * y, s(y)], [0 * y, 1 + 0 * y, 0 * y], [-s(y), 0 * y, c(y)]]).transpose(2, 0, 1))  # fmt: skip
    np.testing.assert_allclose(back, r, atol=1e-6)  # float32 rotations


def test_export_command_writes_files_and_refuses_bad_folders(run, tmp_path, capsys):
    body, folder, tracks, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(folder / "tracks", copy / "tracks")
    assert main(["export", str(copy), "--format", "glb,bvh"]) == 0
    assert (copy / "copy.glb").stat().st_size > 0 and sorted(p.name for p in (copy / "bvh").iterdir()) == ["0003.bvh", "0007.bvh"]
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    (other / "tracks").mkdir(parents=True)
    save_npz(other / "tracks" / "0001.npz", {**tracks[3], "body_model": np.array("smpl-neutral:0000")})
    capsys.readouterr()
    assert main(["export", str(tmp_path / "empty"), str(other), str(copy)]) == 1  # the good one is still exported
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no tracks" in err[0] and "smpl-neutral" in err[1] and "Traceback" not in "".join(err)
    assert main(["export", str(copy), "--format", "fbx"]) == 1
    assert "glb, bvh" in capsys.readouterr().err


def test_track_without_rotations_is_a_one_line_error():
    from lrpose.errors import InputError

    with pytest.raises(InputError, match="rotmats"):
        track_animation({"betas": np.zeros((1, 10))}, load_body())


@pytest.mark.blender
def test_blender_imports_the_glb_with_lrposes_joints(run):
    """Blender's own glTF importer (``bpy``; set BPY_PYTHON to a Python that has it): one armature
    of 24 bones per track and every bone head where lrpose puts the joint, within 1 mm."""
    import os
    import sys

    python = os.environ.get("BPY_PYTHON", sys.executable)
    if subprocess.run([python, "-c", "import bpy"], capture_output=True).returncode != 0:
        pytest.skip("no bpy (pip install bpy in some Python and point BPY_PYTHON at it)")
    body, folder, tracks, anims = run
    times = ["0.0", "0.2", "0.4"]
    script = Path(__file__).with_name("blender_check.py")
    res = subprocess.run([python, str(script), str(folder / "clip.glb"), *times], capture_output=True, text=True, timeout=600)
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert sorted(out["armatures"].values()) == [24, 24]
    for anim in anims:
        joints, _ = lrpose_posed(body, tracks[anim.track_id], anim.betas)
        for t in times:
            k = int(np.argmin(np.abs(anim.times - float(t))))
            if abs(anim.times[k] - float(t)) > 1e-6:
                continue
            heads = out["heads"][t]
            got = np.array([heads[f"track{anim.track_id}/{name}"] for name in anim.names])
            assert np.abs(got - joints[k]).max() < 1e-3, (anim.track_id, t)
