"""YOLO inference runtimes (``lrpose.yolo_runtime``, ``--det-runtime``): the same detections on every
runtime, a cached atomic export, the fallback of ``auto`` and the error of an explicit runtime."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lrpose import assets, yolo_runtime
from lrpose.cli import main
from lrpose.yolo_runtime import RuntimeUnavailable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
YOLO = yolo_runtime.yolo_available() and assets.locate("detector").path is not None
needs_yolo = pytest.mark.skipif(not YOLO, reason="needs ultralytics and the YOLO weights (bash tools/install-yolo.sh)")


def _frame() -> np.ndarray:
    """Frame 0 of the example clip (640x480, six people 68-129 px tall)."""
    from lrpose.io import FrameSource

    return next(iter(FrameSource(EXAMPLES / "cctv_synthetic.mp4"))).image


@needs_yolo
@pytest.mark.parametrize("runtime", ["openvino", "onnx"])
def test_exported_runtime_gives_the_torch_detections(runtime):
    from lrpose.detect import YoloDetector

    problem = yolo_runtime.runtime_problem(runtime)
    if problem:
        pytest.skip(f"{runtime} runtime not usable here: {problem}")
    image = _frame()
    ref = YoloDetector(assets.locate("detector").path, det_size=640, runtime="torch")(image, 0)
    det = YoloDetector(assets.locate("detector").path, det_size=640, runtime=runtime)
    assert det.runtime == runtime and det.runtime_warning is None
    got = det(image, 0)
    assert len(ref.boxes_xyxy) >= 4 and len(got.boxes_xyxy) == len(ref.boxes_xyxy)
    assert np.abs(got.boxes_xyxy - ref.boxes_xyxy).max() < 1.0  # px
    assert np.abs(got.keypoints[..., :2] - ref.keypoints[..., :2]).max() < 1.0  # px
    assert np.abs(got.scores - ref.scores).max() < 0.01
    assert np.abs(got.keypoints[..., 2] - ref.keypoints[..., 2]).max() < 0.01


@needs_yolo
def test_export_is_cached_keyed_and_atomic(tmp_path):
    if yolo_runtime.runtime_problem("openvino"):
        pytest.skip("openvino is not installed (bash tools/install-yolo.sh)")
    weights = assets.locate("detector").path
    first = yolo_runtime.export(weights, "openvino")  # the session's cache (tests/conftest.py)
    stamp = first.stat().st_mtime_ns
    assert yolo_runtime.export(weights, "openvino") == first and first.stat().st_mtime_ns == stamp  # found, not redone
    assert first.parent.parent == yolo_runtime.cache_root() and (first.parent / "model.bin").stat().st_size > 5e6
    key = json.loads((first.parent / "key.json").read_text())
    assert key["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest() and key["imgsz"] == yolo_runtime.EXPORT_SIZE
    assert key["versions"]["openvino"] and key["versions"]["ultralytics"]
    assert not [p for p in first.parent.parent.iterdir() if p.name.startswith(".export-")]  # no temporary folder left
    # another checkpoint (one byte differs) or another export size is another cache entry
    other = tmp_path / weights.name
    other.write_bytes(weights.read_bytes() + b"\0")
    assert yolo_runtime.cache_key(other, "openvino", 640)["sha256"] != key["sha256"]
    assert yolo_runtime.cache_key(weights, "openvino", 320) != yolo_runtime.cache_key(weights, "openvino", 640)


def test_auto_means_openvino_when_installed_else_torch(monkeypatch):
    monkeypatch.setattr(yolo_runtime, "installed", lambda package: False)
    assert yolo_runtime.choose("auto") == "torch" and "not installed" in yolo_runtime.describe("auto")
    monkeypatch.setattr(yolo_runtime, "installed", lambda package: True)
    assert yolo_runtime.choose("auto") == "openvino" and yolo_runtime.choose("onnx") == "onnx"
    with pytest.raises(Exception, match="--det-runtime must be one of auto, openvino, onnx, torch"):
        yolo_runtime.choose("tpu")


def test_missing_runtime_is_a_one_line_error_before_any_export(monkeypatch, tmp_path):
    monkeypatch.setattr(yolo_runtime, "runtime_problem", lambda runtime: "openvino is not installed")
    with pytest.raises(RuntimeUnavailable, match=r"^the openvino detector runtime cannot be used: openvino is not installed"):
        yolo_runtime.export(Path("never-read.pt"), "openvino", root=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def _broken_openvino(monkeypatch) -> None:
    """openvino present but failing at import (a broken install)."""
    real = yolo_runtime.runtime_problem
    monkeypatch.setattr(yolo_runtime, "installed", lambda package: True)
    broken = "openvino does not import (ImportError: broken)"
    monkeypatch.setattr(yolo_runtime, "runtime_problem", lambda r: broken if r == "openvino" else real(r))


@needs_yolo
def test_broken_openvino_auto_falls_back_to_torch_with_one_warning(monkeypatch, tmp_path, capsys):
    _broken_openvino(monkeypatch)
    net, warning = yolo_runtime.load(assets.locate("detector").path, "auto")
    assert net.runtime == "torch" and "\n" not in warning
    assert warning.startswith("the openvino detector runtime cannot be used: openvino does not import") and "runs on torch" in warning
    image = EXAMPLES / "person_64px.png"
    assert main(["image", str(image), "--detector", "yolo", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "openvino" in line] == [f"warning: {warning}"]


@needs_yolo
def test_broken_openvino_explicit_is_error_exit_1(monkeypatch, tmp_path, capsys):
    _broken_openvino(monkeypatch)
    image = EXAMPLES / "person_64px.png"
    assert main(["image", str(image), "--detector", "yolo", "--det-runtime", "openvino", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    why = "openvino does not import (ImportError: broken) (bash tools/install-yolo.sh)"
    assert err == [f"error: the openvino detector runtime cannot be used: {why}"]
    assert not (tmp_path / "person_64px.npz").exists()


def test_bad_det_runtime_is_one_line_exit_1(tmp_path, capsys):
    assert main(["video", str(EXAMPLES / "cctv_synthetic.mp4"), "--det-runtime", "tpu", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --det-runtime must be one of auto, openvino, onnx, torch, not 'tpu'"]


def test_auto_on_a_cuda_device_is_torch(monkeypatch):
    """OpenVINO and ONNX Runtime run on the CPU here: with ``--device cuda`` auto means torch on the GPU; an
    explicit runtime stays what was asked."""
    import torch

    monkeypatch.setattr(yolo_runtime, "installed", lambda package: True)
    assert yolo_runtime.choose("auto", torch.device("cuda")) == "torch" == yolo_runtime.choose("auto", torch.device("cuda", 1))
    assert yolo_runtime.choose("auto", torch.device("cpu")) == "openvino" == yolo_runtime.choose("auto")
    assert yolo_runtime.choose("openvino", torch.device("cuda")) == "openvino"


@needs_yolo
def test_torch_runtime_on_an_explicit_cpu_device_gives_the_same_detections_and_moves_the_model():
    import torch

    from lrpose.detect import YoloDetector

    image, weights = _frame(), assets.locate("detector").path
    ref = YoloDetector(weights, det_size=640, runtime="torch")(image, 0)
    got = YoloDetector(weights, det_size=640, runtime="torch", device=torch.device("cpu"))(image, 0)
    assert len(ref.boxes_xyxy) >= 4
    for a, b in ((ref.boxes_xyxy, got.boxes_xyxy), (ref.scores, got.scores), (ref.keypoints, got.keypoints)):
        np.testing.assert_array_equal(a, b)
    net, _ = yolo_runtime.load(weights, "torch", device=torch.device("meta"))  # meta stands in for a CUDA device
    assert {t.device.type for t in (*net.net.model.parameters(), *net.net.model.buffers())} == {"meta"}
