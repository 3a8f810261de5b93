"""``lrpose image``: outputs, consistency of 2D/3D results, the untrained warning, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lrpose.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "person_64px.png"
FRAME_KEYS = {"pred_cam", "orig_cam", "pose", "rotmats", "betas", "joints3d", "joints2d", "bboxes", "boxes_xyxy", "crop_xyxy",
              "range_index", "native_size", "below_min_size", "trans", "observed", "keypoints2d", "refined", "kp_residual"}  # fmt: skip
KEYS = FRAME_KEYS | {"image_size", "focal_px", "body_model", "checkpoint", "untrained"}


def test_default_run_without_weights_warns_untrained(tmp_path, capsys, without_shipped_networks):
    assert main(["image", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "WARNING: untrained model" in captured.err
    z = np.load(tmp_path / "person_64px.npz")
    assert set(z.files) == KEYS
    assert bool(z["untrained"]) and str(z["checkpoint"]).startswith("untrained")
    assert int(z["native_size"]) == 64 and int(z["range_index"]) == 2
    assert z["pose"].shape == (72,) and z["joints2d"].shape == (24, 2) and str(z["body_model"]).startswith("standin-anny:")
    overlay = cv2.imread(str(tmp_path / "person_64px_overlay.png"))
    assert overlay.shape == (64, 64, 3)
    assert (overlay != cv2.imread(str(EXAMPLE))).any()  # a mesh was drawn


def test_box_weights_and_geometric_consistency(tmp_path, tiny64, capsys):
    img = np.zeros((240, 320, 3), np.uint8)
    img[60:190, 140:190] = 180
    cv2.imwrite(str(tmp_path / "scene.png"), img)
    args = ["image", str(tmp_path / "scene.png"), "--out", str(tmp_path / "o"), "--box", "140,60,190,190"]
    assert main([*args, "--weights", str(tiny64), "--save-verts"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    z = np.load(tmp_path / "o" / "scene.npz")
    assert not bool(z["untrained"]) and str(z["checkpoint"]).startswith("tiny.pt:")
    assert int(z["native_size"]) == 156 and int(z["range_index"]) == 1  # 1.2 x 130 px
    assert z["verts"].shape == (13718, 3)
    # the full-frame perspective camera reproduces the crop's weak-perspective 2D joints
    j = torch.from_numpy(z["joints3d"])[None] + torch.from_numpy(z["trans"])[None, None]
    f = float(z["focal_px"])
    proj = f * j[0, :, :2] / j[0, :, 2:] + torch.tensor([320 / 2 - 0.5, 240 / 2 - 0.5])
    assert np.abs(proj.numpy() - z["joints2d"]).max() < 0.05 * 156
    assert main([*args, "--weights", str(tiny64), "--box-scale", "1.0", "--out", str(tmp_path / "o1")]) == 0
    z1 = np.load(tmp_path / "o1" / "scene.npz")
    assert int(z1["native_size"]) == 130 and int(z1["range_index"]) == 1  # the box as it is
    assert z1["crop_xyxy"].tolist() == [100.0, 60.0, 230.0, 190.0]  # centre (165, 125), corners rounded


def test_missing_image_is_one_line_exit_1(tmp_path, capsys):
    assert main(["image", str(tmp_path / "none.png"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(tmp_path / "none.png") in err[0]
    assert not (tmp_path / "o").exists()  # nothing written


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--box", "1,2,3"], "--box must be x1,y1,x2,y2"),
        (["--box", "500,500,600,600"], "lies outside"),
        (["--weights", "/nonexistent/ck.pt"], "RSC-Net checkpoint"),
        (["--box-scale", "9"], "--box-scale must be between 0.5 and 4.0, got 9.0"),
    ],
)
def test_bad_options_exit_1(tmp_path, capsys, extra, message):
    assert main(["image", str(EXAMPLE), "--out", str(tmp_path), *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_text_file_named_png(tmp_path, capsys):
    (tmp_path / "fake.png").write_text("hello")
    assert main(["image", str(tmp_path / "fake.png"), "--out", str(tmp_path)]) == 1
    assert "is not a readable image" in capsys.readouterr().err
