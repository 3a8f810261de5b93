"""``lrpose video`` end to end on tiny synthetic videos with boxes from JSON and a tiny model."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from lrpose.assets import file_digest
from lrpose.cli import main
from lrpose.io import VideoWriter
from lrpose.models.checkpoint import load_rscnet, save
from lrpose.models.temporal import TemporalModule

W, H, FPS = 160, 120, 10


def person_box(k: int, f: int) -> list[float]:
    """Person k walks right by 2 px per frame."""
    x = 20 + 60 * k + 2 * f
    return [x, 30.0, x + 22.0, 100.0]


def make_video(path: Path, frames: int, people: dict[int, range]) -> dict:
    """A dark video with bright 'people'; returns the boxes JSON (frame -> boxes of visible people)."""
    boxes: dict[str, list] = {}
    with VideoWriter(path, FPS, W, H) as w:
        for f in range(frames):
            img = np.full((H, W, 3), 30, np.uint8)
            rows = []
            for k, visible in people.items():
                b = person_box(k, f)
                img[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] = (200, 150 + 40 * k, 100)
                if f in visible:
                    rows.append(b)
            boxes[str(f)] = rows
            w.write(img)
    return {"frames": boxes}


def frame_count(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
        return n, float(c.streams.video[0].average_rate)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """20 frames: person 0 always detected except frames 8-10, person 1 detected only in frames 5-9."""
    d = tmp_path_factory.mktemp("clip")
    gt = make_video(d / "walk.mp4", 20, {0: [f for f in range(20) if f not in (8, 9, 10)], 1: range(5, 10)})
    (d / "boxes.json").write_text(json.dumps(gt))
    return d / "walk.mp4", d / "boxes.json"


def run(clip, tiny, out: Path, *extra: str) -> int:
    video, boxes = clip
    return main(["video", str(video), "--out", str(out), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal", *extra])


def test_tracks_overlay_and_summary(clip, tiny, tmp_path):
    assert run(clip, tiny, tmp_path, "--min-track", "8", "--save-verts") == 0
    folder = tmp_path / "walk"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames"] == 20 and summary["kept_tracks"] == 1 and summary["dropped_short_tracks"] == 1  # person 1: 5 frames
    assert summary["person_frames_per_range"] == {"0": 0, "1": 0, "2": 20, "3": 0, "4": 0}  # kept tracks only
    assert summary["detector"].startswith("boxes") and not summary["untrained"]
    z = np.load(folder / "tracks" / "0000.npz")
    t = 20
    shapes = {"pose": (t, 72), "betas": (t, 10), "pred_cam": (t, 3), "orig_cam": (t, 4), "joints3d": (t, 24, 3), "joints2d": (t, 24, 2),
              "bboxes": (t, 4), "frame_ids": (t,), "trans": (t, 3), "range_index": (t,), "native_size": (t,), "verts": (t, 13718, 3),
              "observed": (t,), "time_s": (t,)}  # fmt: skip
    assert {k: z[k].shape for k in shapes} == shapes
    assert z["frame_ids"].tolist() == list(range(20))
    assert z["observed"].tolist() == [f not in (8, 9, 10) for f in range(20)]  # the gap is bridged, not split
    assert np.allclose(z["time_s"], np.arange(20) / FPS, atol=1e-3)
    assert float(z["fps"]) == FPS and str(z["checkpoint"]).startswith("tiny.pt:")
    # boxes of 22x70 px -> square side 84 px -> range 2
    assert set(z["native_size"][z["observed"]].tolist()) == {84} and set(z["range_index"].tolist()) == {2}
    # the full-frame perspective camera reproduces the crop's weak-perspective 2D joints
    j = torch.from_numpy(z["joints3d"]) + torch.from_numpy(z["trans"])[:, None]
    proj = float(z["focal_px"]) * j[..., :2] / j[..., 2:] + torch.tensor([W / 2 - 0.5, H / 2 - 0.5])
    assert np.abs(proj.numpy() - z["joints2d"]).max() < 0.05 * 84
    assert frame_count(folder / "overlay.mp4") == (20, FPS)


def test_short_gap_limit_splits_tracks(clip, tiny, tmp_path):
    assert run(clip, tiny, tmp_path, "--min-track", "3", "--max-gap", "1") == 0
    summary = json.loads((tmp_path / "walk" / "summary.json").read_text())
    # person 0 splits at the 3-frame gap into frames 0-7 and 11-19; person 1 (5 frames) is kept
    assert sorted(t["frames"] for t in summary["tracks"]) == [5, 8, 9]


def test_det_stride_bridges_frames(clip, tiny, tmp_path):
    assert run(clip, tiny, tmp_path, "--det-stride", "2", "--min-track", "4") == 0
    z = np.load(tmp_path / "walk" / "tracks" / "0000.npz")
    assert z["frame_ids"].tolist() == list(range(20))


def test_temporal_module_changes_results_and_identity_init_does_not(clip, tiny, tmp_path):
    model_id = f"{tiny.name}:{file_digest(tiny)}"
    rscnet, _ = load_rscnet(tiny)
    identity = TemporalModule.from_rscnet(rscnet)
    save(tmp_path / "identity.pt", identity, None, parent_id=model_id)
    torch.manual_seed(1)
    smoothing = TemporalModule.from_rscnet(rscnet)
    torch.nn.init.normal_(smoothing.linear.weight, std=0.05)
    save(tmp_path / "smooth.pt", smoothing, None, parent_id=model_id)
    video, boxes = clip
    base = ["video", str(video), "--boxes", str(boxes), "--weights", str(tiny), "--min-track", "8", "--no-overlay"]
    assert main([*base, "--out", str(tmp_path / "a"), "--no-temporal"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--temporal-weights", str(tmp_path / "identity.pt")]) == 0
    assert main([*base, "--out", str(tmp_path / "c"), "--temporal-weights", str(tmp_path / "smooth.pt")]) == 0
    a, b, c = (np.load(tmp_path / x / "walk" / "tracks" / "0000.npz") for x in "abc")
    assert np.abs(a["pose"] - b["pose"]).max() < 1e-4  # a zero residual reproduces the per-frame model
    assert np.abs(a["pose"] - c["pose"]).max() > 1e-3
    assert str(c["temporal"]).startswith("GRU smooth.pt:")
    assert not (tmp_path / "a" / "walk" / "overlay.mp4").exists()


def test_temporal_for_another_rscnet_is_refused(clip, tiny, tmp_path, capsys):
    rscnet, _ = load_rscnet(tiny)
    save(tmp_path / "other.pt", TemporalModule.from_rscnet(rscnet), None, parent_id="other.pt:0123456789")
    video, boxes = clip
    args = ["video", str(video), "--out", str(tmp_path), "--boxes", str(boxes), "--weights", str(tiny)]
    assert main([*args, "--temporal-weights", str(tmp_path / "other.pt")]) == 1
    err = capsys.readouterr().err
    assert "was trained on the features of other.pt:0123456789" in err and "Traceback" not in err


def test_resume_skips_finished_video(clip, tiny, tmp_path, capsys):
    assert run(clip, tiny, tmp_path) == 0
    stamp = (tmp_path / "walk" / "summary.json").stat().st_mtime_ns
    assert run(clip, tiny, tmp_path, "--resume") == 0
    assert "already done" in capsys.readouterr().out
    assert (tmp_path / "walk" / "summary.json").stat().st_mtime_ns == stamp


def test_bad_inputs_one_line_each_and_good_ones_still_run(clip, tiny, tmp_path, capsys):
    video, boxes = clip
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    data = video.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    srcs = [tmp_path / "empty.mp4", tmp_path / "text.mp4", tmp_path / "truncated.mp4", video, tmp_path / "missing.mp4"]
    code = main(["video", *map(str, srcs), "--out", str(tmp_path / "o"), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal"])
    assert code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    for bad in ("empty.mp4", "text.mp4", "truncated.mp4", "missing.mp4"):  # one error line names each bad source
        assert sum(bad in line for line in err) == 1, bad
    assert len(err) == 4 and not any("walk.mp4" in line for line in err)
    assert (tmp_path / "o" / "walk" / "summary.json").exists()  # the good video was processed anyway
    assert not (tmp_path / "o" / "empty" / "summary.json").exists() and not (tmp_path / "o" / "missing").exists()


def test_truncated_faststart_video_keeps_the_decoded_frames(tmp_path, capsys):
    c = av.open(str(tmp_path / "fs.mp4"), "w", options={"movflags": "faststart"})  # index first: decodable when cut
    s = c.add_stream("libx264", rate=FPS)
    s.width, s.height, s.pix_fmt = W, H, "yuv420p"
    for i in range(30):
        img = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    data = (tmp_path / "fs.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "none.json").write_text(json.dumps({"frames": {}}))
    assert main(["video", str(tmp_path / "cut.mp4"), "--out", str(tmp_path / "o"), "--boxes", str(tmp_path / "none.json")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    summary = json.loads((tmp_path / "o" / "cut" / "summary.json").read_text())
    assert 0 < summary["frames"] < 30 and summary["error"] and err == ["error: " + summary["error"]]
    assert frame_count(tmp_path / "o" / "cut" / "overlay.mp4")[0] == summary["frames"]


def test_video_without_people_gives_empty_valid_result(tmp_path):
    make_video(tmp_path / "empty_scene.mp4", 6, {})
    (tmp_path / "none.json").write_text(json.dumps({"frames": {}}))
    assert main(["video", str(tmp_path / "empty_scene.mp4"), "--out", str(tmp_path / "o"), "--boxes", str(tmp_path / "none.json")]) == 0
    folder = tmp_path / "o" / "empty_scene"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["kept_tracks"] == 0 and summary["frames"] == 6 and list((folder / "tracks").iterdir()) == []
    assert frame_count(folder / "overlay.mp4") == (6, FPS)


def test_image_folder_source(tiny, tmp_path):
    (tmp_path / "imgs").mkdir()
    gt = {}
    for f in range(9):
        img = np.full((H, W, 3), 30, np.uint8)
        b = person_box(0, f)
        img[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] = 220
        cv2.imwrite(str(tmp_path / "imgs" / f"{f:03d}.png"), img)
        gt[str(f)] = [b]
    (tmp_path / "b.json").write_text(json.dumps({"frames": gt}))
    args = ["video", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"), "--boxes", str(tmp_path / "b.json"), "--weights", str(tiny)]
    assert main([*args, "--no-temporal", "--min-track", "5"]) == 0
    z = np.load(tmp_path / "o" / "imgs" / "tracks" / "0000.npz")
    assert len(z["pose"]) == 9


def test_interrupt_keeps_finished_tracks(clip, tiny, tmp_path):
    from lrpose.body import load_body
    from lrpose.detect import BoxesFile
    from lrpose.models.checkpoint import find_rscnet
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.results import RunInfo
    from lrpose.video import VideoOptions, process_video

    video, boxes = clip
    inner = BoxesFile(boxes)

    def detector(image, index):
        if index == 16:
            raise KeyboardInterrupt
        return inner(image, index)

    body = load_body()
    model, info = find_rscnet(tiny, body)
    pipe = Pipeline(model, body, detector, None, PipelineConfig(max_gap=0, batch_frames=1))
    with pytest.raises(KeyboardInterrupt):
        run_info = RunInfo(body.body_id, info.checkpoint_id, False, "test", "off")
        process_video(video, tmp_path, pipe, body, run_info, VideoOptions(min_track=5))
    # person 0's first track (frames 0-7) and person 1 (5-9) ended before the interrupt and were written
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == ["0000.npz", "0001.npz"]
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "overlay.mp4").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_texture_per_track(clip, tiny, tmp_path, capsys, without_shipped_networks):
    assert run(clip, tiny, tmp_path, "--texture", "--texture-stride", "4", "--no-overlay") == 0
    assert "WARNING: no trained texture network" in capsys.readouterr().err
    files = sorted(p.name for p in (tmp_path / "walk" / "tracks").iterdir())
    assert files == ["0000.mtl", "0000.npz", "0000.obj", "0000_texture.png"]  # the dropped track gets none
    tex = cv2.imread(str(tmp_path / "walk" / "tracks" / "0000_texture.png"))
    assert tex.shape == (128, 128, 3)
    # the texture network's id reaches the track file and the summary like the other networks'
    z = np.load(tmp_path / "walk" / "tracks" / "0000.npz")
    summary = json.loads((tmp_path / "walk" / "summary.json").read_text())
    assert str(z["texture"]) == summary["texture"] == "untrained(seed=0)"


def test_fused_texture_is_the_weighted_mean_of_the_frames_that_see_a_texel():
    from lrpose.textured import TextureFusion

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    vis = rng.random((4, 8, 8)) > 0.5
    vis[:, 0, 0] = False  # a texel no frame sees
    w = np.array([0.2, 1.0, 0.5, 0.7])
    fusion = TextureFusion(8)
    for t, v, x in zip(tex, vis, w, strict=True):
        fusion.add(t, v, float(x))
    fused = fusion.result()
    k = vis[:, 3, 4]
    assert abs(int(fused[3, 4, 0]) - (tex[k, 3, 4, 0] * w[k]).sum() / w[k].sum()) <= 0.5
    assert abs(int(fused[0, 0, 1]) - (tex[:, 0, 0, 1] * w).sum() / w.sum()) <= 0.5
    one = TextureFusion(8)
    one.add(tex[0], vis[0], 1.0)
    assert one.frames == 1 and (one.result()[vis[0]] == tex[0][vis[0]]).all()


def test_keypoints_from_boxes_json_are_stored_and_fitted(tmp_path, tiny, capsys):
    """Detector keypoints reach the track file; frames with them are refined; nothing is NaN."""
    from lrpose.body import load_body
    from lrpose.keypoint_skin import KeypointSkinner, project
    from lrpose.models.checkpoint import load_rscnet as load

    body = load_body()
    rot = torch.eye(3).repeat(1, 24, 1, 1)
    rot[:, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # upright, facing the camera
    load(tiny)  # the tiny network only has to run
    gt = make_video(tmp_path / "walk.mp4", 12, {0: range(12)})
    focal = 5000 / 224 * W
    for f, rows in gt["frames"].items():
        x1, y1, x2, y2 = rows[0]
        tz = focal * 1.7 / (y2 - y1)
        trans = torch.tensor([[((x1 + x2) / 2 - W / 2) * tz / focal, ((y1 + y2) / 2 - H / 2) * tz / focal, tz]])
        uv = project(KeypointSkinner(body, torch.zeros(1, 10))(rot, trans), focal, torch.tensor([W / 2 - 0.5, H / 2 - 0.5]))[0]
        kp = torch.cat([uv, torch.full((17, 1), 0.9)], 1)
        if int(f) == 5:
            kp[:, 2] = 0.0  # no confident keypoint in this frame
        if int(f) == 7:
            kp[3, 0] = float("nan")  # one broken keypoint: ignored, with a warning line
        gt["frames"][f] = [{"box": rows[0], "keypoints": kp.tolist()}]
    (tmp_path / "kp.json").write_text(json.dumps(gt))
    args = ["video", str(tmp_path / "walk.mp4"), "--out", str(tmp_path / "o"), "--boxes", str(tmp_path / "kp.json")]
    assert main([*args, "--weights", str(tiny), "--no-overlay", "--no-temporal", "--min-track", "5"]) == 0
    z = np.load(tmp_path / "o" / "walk" / "tracks" / "0000.npz")
    assert z["keypoints2d"].shape == (12, 17, 3) and not z["refined"][5] and z["refined"].sum() >= 6
    assert np.isnan(z["kp_residual"][5]).all() and np.isnan(z["keypoints2d"]).sum() == 0
    before, after = z["kp_residual"][z["refined"]].T
    assert (after < before).all() and np.isfinite(z["pose"]).all() and np.isfinite(z["trans"]).all()
    summary = json.loads((tmp_path / "o" / "walk" / "summary.json").read_text())
    assert summary["refined_person_frames"] == z["refined"].sum() and summary["kp_residual_px"][1] < summary["kp_residual_px"][0]
    assert summary["warnings"] == ["1 detector keypoint(s) were not finite or outside the frame and were ignored"]
    assert "warning: walk.mp4: 1 detector keypoint(s)" in capsys.readouterr().err
    assert main([*args, "--weights", str(tiny), "--no-overlay", "--no-temporal", "--min-track", "5", "--no-refine", "--resume"]) == 0


def test_overlay_hides_people_only_predicted_over_long_gaps():
    from types import SimpleNamespace as NS

    from lrpose.video import MAX_DRAWN_GAP, _Overlay

    seen = {0, 1, 2, 3, 9, 10, 11, 12, 14, 15}  # gaps: 4-8 (5 frames, hidden) and 13 (1 frame, drawn)
    frames = [NS(frame=NS(index=f), people=[NS(track_id=7, observed=f in seen)]) for f in range(16)]
    overlay = _Overlay.__new__(_Overlay)
    overlay.queue, overlay.last_seen = deque(frames), {}
    hidden = []
    while overlay.queue:
        r = overlay.queue.popleft()
        if overlay._hidden(r):
            hidden.append(r.frame.index)
    assert hidden == [4, 5, 6, 7, 8] and MAX_DRAWN_GAP == 3
