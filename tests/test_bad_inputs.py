"""The bad-input corpus (issue 17): every fault answers in one line with exit code 1 (or runs with a
one-line note), no traceback, and leaves no temporary or partial files. Tiny generated inputs, CPU."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from lrpose import files
from lrpose.cli import main
from tests.test_video import H, W, make_video

ROOT = Path(__file__).resolve().parent.parent


def one_error_line(capsys, *words: str) -> str:
    """The run's stderr is exactly one ``error:`` line holding ``words``; returns it."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0], err
    for w in words:
        assert w in err[0], err
    return err[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files under ``folder`` (atomic-write temps, overlay temps, locks)."""
    return [p for p in folder.rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """12 frames: person 0 detected in frames 0-4 only, person 1 in every frame."""
    d = tmp_path_factory.mktemp("bad_clip")
    gt = make_video(d / "walk.mp4", 12, {0: range(0, 5), 1: range(0, 12)})
    (d / "boxes.json").write_text(json.dumps(gt))
    return d / "walk.mp4", d / "boxes.json"


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pic") / "pic.png"
    img = np.full((48, 32, 3), 40, np.uint8)
    img[8:40, 10:22] = 200
    cv2.imwrite(str(path), img)
    return path


def video(clip, tiny, out: Path, *extra: str) -> int:
    src, boxes = clip
    return main(["video", str(src), "--out", str(out), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal",
                 "--no-refine", "--min-track", "3", "--max-gap", "1", *extra])  # fmt: skip


def image(picture: Path, tiny, out: Path, *extra: str) -> int:
    return main(["image", str(picture), "--out", str(out), "--weights", str(tiny), "--no-refine", *extra])


def fail_with(monkeypatch, mod: object, name: str, code: int, after: int = 0) -> None:
    """``mod.name`` raises ``OSError(code)`` from its ``after + 1``-th call on."""
    real, calls = getattr(mod, name), []

    def fake(*a, **k):
        calls.append(1)
        if len(calls) > after:
            raise OSError(code, os.strerror(code))
        return real(*a, **k)

    monkeypatch.setattr(mod, name, fake)


# ---- output faults -------------------------------------------------------------------------------


def test_out_is_an_existing_file(clip, picture, tiny, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    assert image(picture, tiny, blocker) == 1
    one_error_line(capsys, str(blocker), "is a file, not a folder")
    assert video(clip, tiny, blocker) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_out_on_a_read_only_file_system(picture, tiny, tmp_path, monkeypatch, capsys):
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert image(picture, tiny, tmp_path / "ro" / "out") == 1
    one_error_line(capsys, str(tmp_path / "ro"), "Read-only file system")


def test_image_on_a_full_disk_leaves_nothing(picture, tiny, tmp_path, monkeypatch, capsys):
    fail_with(monkeypatch, files, "_write_all", errno.ENOSPC)
    assert image(picture, tiny, tmp_path / "out") == 1
    one_error_line(capsys, "pic.npz", "No space left on device")
    assert list((tmp_path / "out").rglob("*")) == []


def test_video_on_a_full_disk_before_the_run(clip, tiny, tmp_path, monkeypatch, capsys):
    fail_with(monkeypatch, tempfile, "mkstemp", errno.ENOSPC)
    assert video(clip, tiny, tmp_path) == 1
    one_error_line(capsys, "overlay.mp4", "No space left on device")
    assert leftovers(tmp_path) == [] and not (tmp_path / "walk" / "summary.json").exists()


def test_video_disk_full_mid_run_keeps_finished_tracks(clip, tiny, tmp_path, monkeypatch, capsys):
    fail_with(monkeypatch, files, "_write_all", errno.ENOSPC, after=1)  # the first track is written, then the disk is full
    assert video(clip, tiny, tmp_path, "--no-overlay") == 1
    one_error_line(capsys, "No space left on device")
    folder = tmp_path / "walk"
    assert [p.name for p in (folder / "tracks").iterdir()] == ["0000.npz"] and not (folder / "summary.json").exists()
    assert leftovers(tmp_path) == []


def test_video_file_size_limit_mid_overlay_is_one_line(clip, tiny, tmp_path):
    """A real write fault (RLIMIT_FSIZE: writes past 30 kB fail with EFBIG) while the overlay is open: one line, no temp files."""
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000)); "
        "import torch; torch.set_num_threads(1); from lrpose.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    src, boxes = clip
    args = ["video", str(src), "--out", str(tmp_path), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal", "--no-refine",
            "--min-track", "3", "--max-gap", "1"]  # fmt: skip
    big = tmp_path / "walk"
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert "overlay.mp4" in err[0] or "tracks" in err[0]
    assert leftovers(tmp_path) == [] and not (big / "summary.json").exists()


# ---- interruption and concurrent runs ------------------------------------------------------------


def test_second_run_into_a_busy_folder_is_refused(clip, tiny, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "walk").mkdir()
        (tmp_path / "walk" / files.LOCK_NAME).write_text(str(holder.pid))
        assert video(clip, tiny, tmp_path) == 1
        one_error_line(capsys, "in use by another lrpose run", str(holder.pid))
    finally:
        holder.kill()
        holder.wait()
    assert video(clip, tiny, tmp_path) == 0  # the lock's process is gone: taken over
    assert not (tmp_path / "walk" / files.LOCK_NAME).exists()


def test_resume_after_kill_removes_dead_temp_files(clip, tiny, tmp_path):
    folder = tmp_path / "walk"
    (folder / "tracks").mkdir(parents=True)
    dead = [folder / ".overlay.k2j3h4.mp4", folder / "tracks" / ".0001.npz.abc.tmp", folder / ".summary.json.x.tmp"]
    for p in dead:
        p.write_bytes(b"partial")
    (folder / files.LOCK_NAME).write_text("999999999")  # a killed run's lock (no such process)
    assert video(clip, tiny, tmp_path, "--resume") == 0
    assert leftovers(tmp_path) == [] and (folder / "summary.json").exists() and (folder / "overlay.mp4").exists()


# ---- boxes ---------------------------------------------------------------------------------------


def test_huge_box_is_clipped_with_a_note(picture, tiny, tmp_path, capsys):
    assert image(picture, tiny, tmp_path, "--box", "0,0,1e9,1e9") == 0
    err = capsys.readouterr().err
    assert "clipped to 0,0,32,48" in err and "Traceback" not in err
    z = np.load(tmp_path / "pic.npz")
    assert z["boxes_xyxy"].tolist() == [0, 0, 32, 48] and int(z["native_size"]) <= 58


def test_box_outside_the_image_is_one_line(picture, tiny, tmp_path, capsys):
    assert image(picture, tiny, tmp_path, "--box", "100,100,120,140") == 1
    one_error_line(capsys, "outside the 32x48 image", "x1,y1,x2,y2")


def test_boxes_pointing_at_a_folder(clip, tiny, tmp_path, capsys):
    src, _ = clip
    assert main(["video", str(src), "--out", str(tmp_path), "--boxes", str(tmp_path), "--weights", str(tiny)]) == 1
    one_error_line(capsys, str(tmp_path), "is a folder")


def test_boxes_on_negative_frames(clip, tiny, tmp_path, capsys):
    src, _ = clip
    boxes = tmp_path / "neg.json"
    boxes.write_text(json.dumps({"frames": {"-1": [[1, 1, 20, 40]]}}))
    assert main(["video", str(src), "--out", str(tmp_path), "--boxes", str(boxes), "--weights", str(tiny)]) == 1
    one_error_line(capsys, "negative")


def test_boxes_all_off_frame_warn(clip, tiny, tmp_path, capsys):
    src, _ = clip
    boxes = tmp_path / "off.json"
    boxes.write_text(json.dumps({"frames": {"0": [[W + 10, 5, W + 40, 60]], "500": [[1, 1, 20, 40]]}}))
    assert main(["video", str(src), "--out", str(tmp_path), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal"]) == 0
    err = capsys.readouterr().err
    assert "none of the 2 boxes" in err and "1 on frames past its end" in err and f"{W}x{H}" in err
    summary = json.loads((tmp_path / "walk" / "summary.json").read_text())
    assert any("none of the 2 boxes" in w for w in summary["warnings"])


def test_boxes_past_the_edge_are_clipped_with_a_warning(clip, tiny, tmp_path, capsys):
    src, _ = clip
    boxes = tmp_path / "edge.json"
    boxes.write_text(json.dumps({"frames": {str(f): [[W - 15, 20, W + 30, 90]] for f in range(12)}}))
    assert main(["video", str(src), "--out", str(tmp_path), "--boxes", str(boxes), "--weights", str(tiny), "--no-temporal"]) == 0
    assert "12 box(es) in --boxes" in capsys.readouterr().err
    z = np.load(tmp_path / "walk" / "tracks" / "0000.npz")
    assert float(z["boxes_xyxy"][:, 2].max()) == W


# ---- eval data and body files --------------------------------------------------------------------


def shard(folder: Path, n: int = 2, drop: str | None = None) -> Path:
    arrays = {"images": np.zeros((n, 32, 32, 3), np.uint8), "part": np.zeros((n, 24, 3), np.float32),
              "S": np.zeros((n, 24, 4), np.float32), "pose": np.zeros((n, 72), np.float32), "betas": np.zeros((n, 10), np.float32),
              "has_smpl": np.ones(n, np.float32)}  # fmt: skip
    arrays.pop(drop, None)
    folder.mkdir(exist_ok=True)
    np.savez(folder / "crops_000.npz", **arrays)
    return folder / "crops_000.npz"


@pytest.mark.parametrize("fault", ["garbage", "truncated", "incomplete", "empty"])
def test_eval_on_bad_shards(fault, tiny, tmp_path, capsys):
    data = tmp_path / "data"
    path = shard(data, n=0 if fault == "empty" else 2, drop="betas" if fault == "incomplete" else None)
    if fault == "garbage":
        path.write_bytes(b"\x00garbage" * 50)
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    assert main(["eval", "--data", str(data), "--weights", str(tiny), "--resolutions", "32"]) == 1
    line = one_error_line(capsys, "crops")
    assert str(path) in line or str(data) in line


def test_smpl_with_inconsistent_shapes(tmp_path, capsys):
    from tests.fake_smpl import fake_smpl_dict

    d = fake_smpl_dict()
    d["shapedirs"], d["J_regressor"], d["weights"] = d["shapedirs"].x, d["J_regressor"].toarray(), d["weights"][:100]
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(d, protocol=2))
    assert main(["doctor", "--smpl", str(tmp_path)]) == 1
    one_error_line(capsys, "SMPL_NEUTRAL.pkl", "weights has shape (100, 24), expected (6890, 24)")


# ---- threads, progress, summary ------------------------------------------------------------------


def test_threads_follow_free_cores():
    from lrpose.threads import auto_threads

    assert auto_threads(cores=2, load=0.0) == 2
    assert auto_threads(cores=2, load=1.0) == 1 and auto_threads(cores=2, load=5.0) == 1
    assert auto_threads(cores=16, load=3.0) == 8 and auto_threads(cores=8, load=3.2) == 5


def test_threads_are_shared_by_threads_that_compute_at_once(monkeypatch):
    import torch

    from lrpose import threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "auto_threads", lambda: 2)
        assert threads.set_threads(0, workers=2) == 1 and torch.get_num_threads() == 1  # video: detection beside the estimation
        assert threads.set_threads(0) == 2 and threads.set_threads(3, workers=2) == 3  # an explicit --threads is kept
        monkeypatch.setattr(threads, "auto_threads", lambda: 1)
        assert threads.set_threads(0, workers=2) == 1
    finally:
        torch.set_num_threads(before)


def test_negative_threads_is_one_line(picture, tiny, tmp_path, capsys):
    assert image(picture, tiny, tmp_path, "--threads", "-1") == 1
    one_error_line(capsys, "--threads")


def test_progress_lines_in_a_log(clip, tiny, tmp_path, monkeypatch, capsys):
    from lrpose import cli_report

    monkeypatch.setattr(cli_report, "PROGRESS_EVERY_S", 0.0)
    assert video(clip, tiny, tmp_path, "--no-overlay") == 0
    out = capsys.readouterr().out
    assert "walk.mp4: frame 12/12," in out and "frames/s" in out


def test_summary_table_fits_80_columns(tmp_path):
    from rich.console import Console

    from lrpose.cli_report import summary_table
    from tests.test_results import summary

    rows = [(summary(source="/very/long/path/to/a/camera/recording_2024_05_01.mp4"), str(tmp_path / "results" / "recording"))]
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(rows))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80
    header = next(line for line in lines if "source" in line)
    assert all(col in header for col in ("frames", "tracks", "fps", "result"))
    assert any("recording_2024_05_01.mp4" in line for line in lines)
