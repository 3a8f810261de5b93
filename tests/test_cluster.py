"""``lrpose video --ray`` on a local Ray instance: the plain command's results, per-video failures,
resume and one summary of the run. Skipped without Ray (pip install -e '.[ray]'); CI does not
install it (results of a local run are in the issue's note)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lrpose.cli import main
from lrpose.results import read_result
from tests.test_video import make_video

pytest.importorskip("ray")


def test_ray_gives_the_plain_commands_results_and_reports_failures(tmp_path, tiny, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    gt = make_video(videos / "a.mp4", 8, {0: range(8), 1: range(2, 8)})
    shutil.copy(videos / "a.mp4", videos / "b.mp4")
    (videos / "c.mp4").write_bytes(b"not a video")
    (tmp_path / "boxes.json").write_text(json.dumps(gt))
    args = ["--boxes", str(tmp_path / "boxes.json"), "--weights", str(tiny), "--no-temporal", "--no-overlay", "--min-track", "1"]
    assert main(["video", str(videos / "a.mp4"), "--out", str(tmp_path / "plain"), *args]) == 0
    capsys.readouterr()
    code = main(["video", str(videos), "--out", str(tmp_path / "ray"), "--ray", "--workers", "2", *args])
    err = capsys.readouterr().err
    assert code == 1 and err.count("error:") == 1 and "c.mp4" in err and "Traceback" not in err  # the bad video, one line
    for name in ("a", "b"):
        for track in sorted((tmp_path / "plain" / "a" / "tracks").glob("*.npz")):
            mine, plain = read_result(tmp_path / "ray" / name / "tracks" / track.name), read_result(track)
            for key in ("pose", "betas", "trans", "boxes_xyxy", "frame_ids"):
                np.testing.assert_allclose(mine[key], plain[key], atol=1e-5)
    run = json.loads((tmp_path / "ray" / "videos.json").read_text())["videos"]
    assert [v["source"].rsplit("/", 1)[-1] for v in run] == ["a.mp4", "b.mp4", "c.mp4"]
    assert run[0]["frames"] == 8 and run[2]["error"]
    # --resume: the finished videos are not run again, the bad one is tried (and fails) again
    assert main(["video", str(videos), "--out", str(tmp_path / "ray"), "--ray", "--resume", *args]) == 1
    out = capsys.readouterr()
    assert out.out.count("already done") == 2 and out.err.count("error:") == 1


def test_unreachable_cluster_is_one_line(tmp_path, tiny, capsys):
    code = main(
        ["video", str(tmp_path / "x.mp4"), "--out", str(tmp_path), "--ray", "--ray-address", "ray://127.0.0.1:1", "--weights", str(tiny)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "Ray cluster at ray://127.0.0.1:1" in err
