"""Detectors, the tracker adapter, frame decoding and the temporal module's streaming form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose import assets
from lrpose.detect import BoxesFile, HogDetector, YoloDetector, make_detector, yolo_available
from lrpose.errors import InputError
from lrpose.io import FrameSource, _to_rgb
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.models.temporal import TemporalConfig, TemporalModule
from lrpose.track import SortTracker
from lrpose.types import Detections
from tests.test_models import mean_params

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_tracker_keeps_ids_bridges_gaps_and_ends_tracks():
    tracker = SortTracker(fps=10, max_gap=2)
    seen = []
    for f in range(12):
        rows = [[10 + 3 * f, 10, 30 + 3 * f, 60]] if f not in (4, 5) else []  # person A missed at frames 4-5
        if f < 6:
            rows.append([100, 20, 120, 70])  # person B stands still, leaves after frame 5
        d = Detections(np.array(rows, np.float32).reshape(-1, 4), np.ones(len(rows), np.float32))
        seen.append({b.track_id: b for b in tracker.update(d, f)})
    assert [sorted(s) for s in seen[:4]] == [[0, 1]] * 4
    assert not seen[4][0].observed and not seen[5][0].observed and seen[6][0].observed  # bridged, same id
    assert abs(float(seen[5][0].box_xyxy[0]) - 25) < 3  # the filter predicted the motion through the gap
    assert 1 in seen[7] and 1 not in seen[8]  # B: 3 frames without detection > max_gap -> ended
    for f in (12, 13, 14, 15):  # frames the detector skipped: the track goes on, nobody gets staler
        assert [b.track_id for b in tracker.update(None, f)] == [0]


def test_boxes_file_formats_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"frames": {"2": [[1, 2, 11, 32, 0.5]]}}))
    d = BoxesFile(tmp_path / "a.json")(np.zeros((40, 40, 3), np.uint8), 2)
    assert d.boxes_xyxy.tolist() == [[1, 2, 11, 32]] and d.scores.tolist() == [0.5]
    assert len(BoxesFile(tmp_path / "a.json")(np.zeros((40, 40, 3), np.uint8), 3).boxes_xyxy) == 0
    (tmp_path / "b.json").write_text(json.dumps([[[0, 0, 5, 9]], []]))
    assert len(BoxesFile(tmp_path / "b.json")(np.zeros((40, 40, 3), np.uint8), 0).boxes_xyxy) == 1
    for bad, msg in (("{", "not valid JSON"), ('{"frames": {"0": [[5, 5, 1, 1]]}}', "x2 > x1"), ('{"x": 1}', "expected")):
        (tmp_path / "c.json").write_text(bad)
        with pytest.raises(InputError, match=msg):
            BoxesFile(tmp_path / "c.json")


def test_rotation_metadata_is_applied():
    class FakeFrame:
        rotation = 90

        def to_ndarray(self, format):
            return np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)

    rgb = _to_rgb(FakeFrame())
    assert rgb.shape == (3, 2, 3) and (rgb == np.rot90(FakeFrame().to_ndarray("rgb24"))).all()


def test_frame_source_reads_example_with_timestamps():
    src = FrameSource(EXAMPLES / "cctv_synthetic.mp4")
    assert (src.width, src.height, src.fps, src.frame_count) == (640, 480, 15.0, 60)
    times = [f.time_s for f, _ in zip(src, range(3), strict=False)]
    assert np.allclose(times, [0, 1 / 15, 2 / 15], atol=1e-3)


def test_hog_finds_synthetic_people():
    src = FrameSource(EXAMPLES / "cctv_synthetic.mp4")
    frame = next(iter(src))
    gt = np.load(EXAMPLES / "cctv_synthetic_gt.npz")
    truth = gt["boxes"][0][gt["present"][0]]
    found = HogDetector(det_size=1280)(frame.image, 0)
    hits = sum(max(iou(t, b) for b in found.boxes_xyxy) > 0.3 for t in truth) if len(found.boxes_xyxy) else 0
    assert hits >= 3, (found.boxes_xyxy, truth)


def test_auto_detector_falls_back_to_hog_without_weights(monkeypatch):
    monkeypatch.setattr(assets, "_package_dirs", lambda name: [])
    det, line = make_detector("auto")
    assert isinstance(det, HogDetector) and "fallback: no YOLO weights found" in line
    with pytest.raises(InputError, match="--detector must be"):
        make_detector("ssd")


@pytest.mark.skipif(not (yolo_available() and assets.locate("detector").path), reason="needs ultralytics and YOLO weights")
def test_yolo_finds_synthetic_people():
    frame = next(iter(FrameSource(EXAMPLES / "cctv_synthetic.mp4")))
    gt = np.load(EXAMPLES / "cctv_synthetic_gt.npz")
    truth = gt["boxes"][0][gt["present"][0]]
    found = YoloDetector(assets.locate("detector").path, det_size=1280, conf=0.25)(frame.image, 0)
    assert sum(max(iou(t, b) for b in found.boxes_xyxy) > 0.5 for t in truth) == len(truth)


def test_temporal_module_streams_and_starts_as_identity():
    torch.manual_seed(0)
    net = RSCNet(RSCNetConfig(depth=18, input_size=32), mean_params()).eval()
    module = TemporalModule.from_rscnet(net, TemporalConfig(feat_dim=512, hidden=64)).eval()
    feats = torch.randn(2, 7, 512)
    with torch.no_grad():
        per_frame = net.regressor(feats.reshape(14, 512))[0].reshape(2, 7, 144)
        assert torch.allclose(module(feats).pose6d, per_frame, atol=1e-5)  # zero residual == per-frame model
        torch.nn.init.normal_(module.linear.weight, std=0.1)
        whole = module(feats)
        state, steps = None, []
        for t in range(7):  # online, one frame at a time, as the pipeline runs it
            out = module(feats[:, t : t + 1], state)
            state = out.state
            steps.append(out.pose6d)
    assert torch.allclose(torch.cat(steps, 1), whole.pose6d, atol=1e-5)
    assert not torch.allclose(whole.pose6d, per_frame, atol=1e-3)
    assert whole.rotmats.shape == (2, 7, 24, 3, 3) and whole.state.shape == (2, 2, 64)


def test_boxes_file_keypoints_and_tracker_attaches_them(tmp_path):
    kp = [[5.0 + k, 10.0 + 2 * k, 0.9] for k in range(17)]
    kp[3] = [float("nan"), 1.0, 0.9]  # not finite: confidence 0
    kp[4] = [500.0, 10.0, 0.9]  # outside the frame: confidence 0
    rows = [{"box": [1, 2, 21, 42], "score": 0.8, "keypoints": kp}, {"box": [25, 2, 39, 40], "keypoints": kp}]
    (tmp_path / "k.json").write_text(json.dumps({"frames": {"0": rows, "1": rows}}))
    image = np.zeros((48, 48, 3), np.uint8)
    d = BoxesFile(tmp_path / "k.json")(image, 0)
    assert d.keypoints.shape == (2, 17, 3) and np.allclose(d.scores, [0.8, 1.0])
    assert d.keypoints[0, 3, 2] == 0 and d.keypoints[0, 4, 2] == 0 and np.allclose(d.keypoints[0, 5], [10.0, 20.0, 0.9])
    assert np.isfinite(d.keypoints).all()
    tracker = SortTracker(fps=10, max_gap=2)
    for f in range(2):
        boxes = tracker.update(BoxesFile(tmp_path / "k.json")(image, f), f)
    assert [b.keypoints is not None for b in boxes] == [True, True]
    assert tracker.update(None, 2)[0].keypoints is None  # frames without a detector run carry none
    for bad in ([{"box": [1, 2, 21, 42], "keypoints": [[1, 2]]}], [{"box": "x"}], "nope"):
        (tmp_path / "bad.json").write_text(json.dumps({"frames": {"0": bad}}))
        with pytest.raises(InputError):
            BoxesFile(tmp_path / "bad.json")


def test_find_person_takes_the_largest_and_says_when_there_is_none():
    from lrpose.detect import find_person

    class Fake:
        name = "fake"

        def __init__(self, boxes):
            self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)

        def __call__(self, image, index):
            kp = np.tile(np.arange(len(self.boxes), dtype=np.float32)[:, None, None], (1, 17, 3))
            return Detections(self.boxes, np.ones(len(self.boxes), np.float32), kp)

    box, kp = find_person(Fake([[0, 0, 10, 10], [5, 5, 40, 60], [1, 1, 20, 20]]), np.zeros((64, 64, 3), np.uint8))
    assert box.tolist() == [5, 5, 40, 60] and kp[0, 0] == 1
    with pytest.raises(InputError, match="no person"):
        find_person(Fake([]), np.zeros((64, 64, 3), np.uint8))


def test_scene_size_check_rejects_giants_and_forgets_between_videos():
    from lrpose.detect import HogDetector
    from lrpose.plausible import SceneSizeCheck
    from lrpose.types import Detections

    check = SceneSizeCheck()
    for k in range(8):  # people ~60 px tall with their feet near y = 300, ~30 px near y = 150
        check(Detections(np.array([[10.0 * k, 240, 10.0 * k + 20, 300], [5.0 * k, 120, 5.0 * k + 10, 150]], np.float32), np.ones(2)), 480)
    giant = np.array([[100, 30, 190, 300], [300, 242, 320, 301], [400, 60, 420, 150]], np.float32)
    out = check(Detections(giant, np.ones(3, np.float32)), 480)
    assert out.boxes_xyxy.tolist() == [[300, 242, 320, 301]] and check.rejected == 2
    far = check(Detections(np.array([[0, 400, 10, 470]], np.float32), np.ones(1, np.float32)), 480)
    assert len(far.boxes_xyxy) == 1  # no neighbours at that height yet: accepted
    hog = HogDetector()
    hog.scene.rejected = 5
    hog.new_scene()
    assert hog.scene.rejected == 0 and len(hog.scene.seen) == 0


def test_automatic_detector_size_follows_the_smallest_person_with_full_looks_between():
    from lrpose.detect import AUTO_MAX, AUTO_RESCAN, AUTO_STEPS, auto_side, parse_det_size

    assert auto_side(640, None, 1) == AUTO_MAX  # nobody known yet: a full look
    assert auto_side(640, 48.0, AUTO_RESCAN) == AUTO_MAX  # every AUTO_RESCAN-th call: a full look
    assert auto_side(640, 144.0, 1) == 640  # the smallest person is already 144 px: the frame as it is
    assert auto_side(640, 96.0, 1) == 960  # 1.5x makes 96 px people 144 px tall
    assert auto_side(640, 64.0, 1, person=96.0) == 960  # --fast: 96 px
    assert auto_side(640, 20.0, 1) == AUTO_MAX  # never above the full look
    assert auto_side(1920, 600.0, 1) == 960  # large people in a large frame: shrunk at most 2x
    assert auto_side(200, 300.0, 1) == 320  # never below 320
    assert {auto_side(n, h, 1) for n in (213, 640, 1000, 1920) for h in range(10, 700, 7)} <= set(AUTO_STEPS)  # a few shapes
    assert parse_det_size("auto") is None and parse_det_size(" AUTO ") is None and parse_det_size("960") == 960
    for bad in ("16", "big", "1.5"):
        with pytest.raises(InputError, match="--det-size"):
            parse_det_size(bad)
