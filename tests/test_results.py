"""``lrpose.results``: track files (keep/drop rules, one box convention), image file = one track frame, typed summary."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from lrpose.crops import square_from_box
from lrpose.results import RunInfo, RunSummary, TrackWriter, person_arrays, read_result, read_summary, save_image_result
from lrpose.types import PoseEstimate


def estimate(track: int, frame: int, observed: bool = True, box=(10.0, 20.0, 40.0, 80.0)) -> PoseEstimate:
    b = np.array(box, np.float32)
    z = np.zeros
    return PoseEstimate(
        track_id=track, frame_index=frame, box_xyxy=b, observed=observed, crop=square_from_box(b), range_index=3,
        pose=np.full(72, frame, np.float32), rotmats=np.tile(np.eye(3, dtype=np.float32), (24, 1, 1)), betas=z(10, np.float32),
        pred_cam=z(3, np.float32), orig_cam=z(4, np.float32), trans=np.array([0, 0, 5], np.float32), joints3d=z((24, 3), np.float32),
        joints2d=z((24, 2), np.float32), vertices=z((7, 3), np.float32), features=z(4, np.float32),
    )  # fmt: skip


def test_box_convention():
    a = person_arrays(estimate(0, 0))
    assert a["boxes_xyxy"].tolist() == [10, 20, 40, 80]
    assert a["bboxes"].tolist() == [25, 50, 30, 60]  # VIBE: centre and size of the same box
    assert a["crop_xyxy"].tolist() == [-11, 14, 61, 86]  # the square fed to the network: 1.2 x 60 px around the centre
    assert int(a["native_size"]) == 72 and not bool(a["below_min_size"])


def test_track_writer_keeps_long_tracks_and_drops_trailing_bridged_frames(tmp_path):
    ended = []
    w = TrackWriter(tmp_path, min_track=3, save_verts=True, meta={"fps": np.float32(10)}, on_end=lambda i, kept: ended.append((i, kept)))
    for f in range(4):
        w.add(estimate(0, f), f / 10)
    w.add(estimate(0, 4, observed=False), 0.4)  # bridged, then the track ends: not written
    for f in range(2):
        w.add(estimate(1, f), f / 10)
    assert w.drawable(0, 2) and not w.drawable(1, 1)
    w.end_all()
    assert ended == [(0, True), (1, False)] and w.dropped == 1 and w.lengths == {0: 4} and w.ranges == Counter({3: 4})
    z = read_result(tmp_path / "0000.npz")
    assert z["frame_ids"].tolist() == [0, 1, 2, 3] and z["pose"].shape == (4, 72) and z["verts"].shape == (4, 7, 3)
    assert z["time_s"].tolist() == [0.0, 0.1, 0.2, 0.3] and int(z["track_id"]) == 0 and float(z["fps"]) == 10
    assert not (tmp_path / "0001.npz").exists() and w.drawable(0, 3) and not w.drawable(0, 4)


def test_image_file_holds_the_keys_of_one_track_frame(tmp_path):
    info = RunInfo("standin-anny:x", "tiny.pt:abc", False, texture="tex.pt:def")
    save_image_result(tmp_path / "p.npz", estimate(0, 0), info, (64, 96), 1428.6, save_verts=False)
    image = read_result(tmp_path / "p.npz")
    w = TrackWriter(tmp_path, 1, False, info.arrays())
    w.add(estimate(0, 0), 0.0)
    w.end_all()
    track = read_result(tmp_path / "0000.npz")
    per_frame = set(track) - {"frame_ids", "time_s", "track_id"}
    assert set(image) == per_frame | {"image_size", "focal_px"}
    for k in per_frame - set(info.arrays()):
        np.testing.assert_array_equal(track[k][0], image[k])
    assert str(image["texture"]) == "tex.pt:def" and image["image_size"].tolist() == [64, 96]


def summary(**kw) -> RunSummary:
    base = dict(
        source="a.mp4", source_bytes=10, frames=3, fps=25.0, width=64, height=48, kept_tracks=1,
        tracks=[{"id": 0, "frames": 3, "file": "tracks/0000.npz"}], dropped_short_tracks=0,
        person_frames_per_range=RunSummary.ranges_histogram(Counter({2: 3})), detector="boxes", temporal="off",
        checkpoint="c:1", body_model="b:2", untrained=False, seconds_per_stage={"network": 0.5}, seconds=1.0, frames_per_second=3.0,
    )  # fmt: skip
    return RunSummary(**{**base, **kw})


def test_summary_round_trip_keeps_unknown_keys(tmp_path):
    s = summary(error="cut short")
    s.save(tmp_path)
    back = read_summary(tmp_path)
    assert back == s and back.person_frames_per_range == {"0": 0, "1": 0, "2": 3, "3": 0, "4": 0}
    data = json.loads((tmp_path / "summary.json").read_text())
    data["written_by"] = "lrpose 9.9"
    (tmp_path / "summary.json").write_text(json.dumps(data))
    newer = read_summary(tmp_path)
    assert newer.extra == {"written_by": "lrpose 9.9"} and json.loads(newer.to_json()) == data


def test_older_summary_people_count_reads_as_kept_tracks(tmp_path):
    data = json.loads(summary().to_json())
    data["people"] = data.pop("kept_tracks")
    (tmp_path / "summary.json").write_text(json.dumps(data))
    back = read_summary(tmp_path)
    assert back == summary() and back.kept_tracks == 1 and "people" not in back.extra


def test_unreadable_or_incomplete_summary_reads_as_unfinished(tmp_path):
    assert read_summary(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"source": "a.mp4", "frames"')
    assert read_summary(tmp_path) is None
    (tmp_path / "summary.json").write_text('{"source": "a.mp4"}')
    assert read_summary(tmp_path) is None
