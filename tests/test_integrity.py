"""Bad input never gives a silent wrong result (issue 20): one line, exit 1 (or a counted warning), no traceback or partial files."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lrpose.cli import main
from lrpose.models.checkpoint import save
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from tests.test_models import mean_params

SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "lrpose_rscnet.pt"


def one_error_line(capsys) -> str:
    """The single stderr line of a failed command (asserts there is exactly one and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files (``.name.*.tmp`` / ``.name.*.mp4``) left anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob(".*") if p.is_file())


@pytest.fixture
def person_png(tmp_path) -> Path:
    img = np.zeros((96, 64, 3), np.uint8)
    img[10:90, 20:44] = 180
    path = tmp_path / "person.png"
    cv2.imwrite(str(path), img)
    return path


def image_fails(capsys, person_png: Path, out: Path, weights: Path) -> str:
    """``lrpose image`` with ``weights``: exit 1, one line, nothing written; returns the line."""
    assert main(["image", str(person_png), "--out", str(out), "--weights", str(weights), "--no-refine"]) == 1
    line = one_error_line(capsys)
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    return line


# --- checkpoints ---------------------------------------------------------------------------------


def _with_state(src: Path, dst: Path, edit) -> Path:
    obj = torch.load(src, weights_only=True)
    edit(obj)
    buf = io.BytesIO()
    torch.save(obj, buf)
    dst.write_bytes(buf.getvalue())
    return dst


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_checkpoint(tmp_path, tiny64, person_png, capsys, value):
    def poison(obj):
        obj["state_dict"]["regressor.fc1.bias"][3] = value
        obj.pop("weights_sha256")  # as a file from a diverged run would be: consistent, but not finite

    bad = _with_state(tiny64, tmp_path / "nan.pt", poison)
    line = image_fails(capsys, person_png, tmp_path / "out", bad)
    assert line.startswith(f"error: {bad}") and "NaN or infinite" in line and "regressor.fc1.bias" in line


def test_flipped_bytes_are_reported_damaged(tmp_path, person_png, capsys):
    data = bytearray(SHIPPED.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(b ^ 0xFF for b in data[middle : middle + 4096])
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(data))
    line = image_fails(capsys, person_png, tmp_path / "out", bad)
    assert "is damaged" in line and "CRC" in line


def test_weights_digest_catches_a_consistent_container_with_other_weights(tmp_path, tiny64, person_png, capsys):
    def tamper(obj):  # re-saved by torch: the zip CRCs are right, the weights are not the digested ones
        obj["state_dict"]["regressor.fc1.bias"][0] += 1.0

    bad = _with_state(tiny64, tmp_path / "tampered.pt", tamper)
    line = image_fails(capsys, person_png, tmp_path / "out", bad)
    assert "is damaged" in line and "digest" in line


def test_checkpoint_without_digest_still_loads(tmp_path, tiny64, person_png, capsys):
    old = _with_state(tiny64, tmp_path / "old.pt", lambda obj: obj.pop("weights_sha256"))
    assert main(["image", str(person_png), "--out", str(tmp_path / "out"), "--weights", str(old), "--no-refine"]) == 0


def test_lrpose_checkpoint_without_state_dict(tmp_path, tiny64, person_png, capsys):
    bad = _with_state(tiny64, tmp_path / "empty.pt", lambda obj: obj.pop("state_dict"))
    line = image_fails(capsys, person_png, tmp_path / "out", bad)
    assert "without its weights" in line


class _Exploit:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_malicious_pickle_is_refused_without_unsafe_advice(tmp_path, person_png, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": _Exploit(str(marker))}, bad)
    line = image_fails(capsys, person_png, tmp_path / "out", bad)
    assert not marker.exists()
    assert "refused" in line and "weights_only" not in line and "will likely succeed" not in line

    legacy = tmp_path / "evil_legacy.pt"  # a plain pickle, no zip container
    legacy.write_bytes(pickle.dumps({"state_dict": _Exploit(str(marker))}))
    line = image_fails(capsys, person_png, tmp_path / "out2", legacy)
    assert not marker.exists() and "weights_only" not in line


def test_truncated_and_garbage_checkpoints(tmp_path, tiny64, person_png, capsys):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny64.read_bytes()[:5000])
    assert "damaged" in image_fails(capsys, person_png, tmp_path / "o1", cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    line = image_fails(capsys, person_png, tmp_path / "o2", junk)
    assert "weights_only" not in line and line.startswith(f"error: {junk}")


# --- training run folders ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    from lrpose.config import BodyConfig
    from lrpose.training.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("crops")
    generate(SynthConfig(kind="crops", n=8, shard_size=8, crop_size=64, tex_size=16, seed=1), BodyConfig(), out)
    return out


def _log_steps(folder: Path) -> list[int]:
    import csv

    return [int(r["step"]) for r in csv.DictReader((folder / "train_log.csv").open())]


def test_train_refuses_a_used_folder_resumes_after_a_kill_and_names_a_copied_folder(crops, tmp_path, monkeypatch, capsys):
    from lrpose.models.checkpoint import load_train_state
    from lrpose.training import plumbing

    run = tmp_path / "run"
    args = ["train", "rscnet", "--data", str(crops), "--out", str(run), "--depth", "18", "--input-size", "32", "--batch-size", "2",
            "--steps", "5", "--ckpt-every", "2", "--queue-size", "8"]  # fmt: skip
    step_done = plumbing.RunFolder.step_done

    def killed_after_step_3(self, done, row, parts):  # the process dies (SIGKILL): no save, no clean-up
        step_done(self, done, row, parts)
        if done == 3:
            raise SystemExit(137)

    monkeypatch.setattr(plumbing.RunFolder, "step_done", killed_after_step_3)
    assert main(args) == 137
    monkeypatch.undo()
    assert _log_steps(run) == [1, 2, 3] and load_train_state(run / "last.pt")["step"] == 2
    capsys.readouterr()

    assert main(args) == 1  # a fresh run would overwrite last.pt and append to the old log
    line = one_error_line(capsys)
    assert "is not empty" in line and "--resume" in line and "--overwrite" in line
    assert _log_steps(run) == [1, 2, 3]

    assert main([*args, "--resume", str(run / "last.pt")]) == 0
    assert _log_steps(run) == [1, 2, 3, 4, 5]  # step 3 (logged after the last save) is not repeated

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("last.pt", "train_log.csv"):
        (copy / name).write_bytes((run / name).read_bytes())
    copied = [a if a != str(run) else str(copy) for a in args]
    assert main([*copied, "--steps", "6", "--resume", str(copy / "last.pt")]) == 1
    line = one_error_line(capsys)
    assert "different settings" in line and "steps 5 -> 6" in line and "copy" in line
    assert main([*copied, "--resume", str(copy / "last.pt")]) == 1
    line = one_error_line(capsys)
    assert "output folder is the only difference" in line and f"--out {run}" in line

    assert main([*args, "--overwrite"]) == 0
    assert _log_steps(run) == [1, 2, 3, 4, 5] and not leftovers(run)
    assert main([*args, "--overwrite", "--resume", str(run / "last.pt")]) == 1
    assert "not both" in one_error_line(capsys)


def test_resume_from_a_damaged_checkpoint_is_refused_and_keeps_the_file(crops, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "rscnet", "--data", str(crops), "--out", str(run), "--depth", "18", "--input-size", "32", "--batch-size", "2",
            "--steps", "2", "--queue-size", "8"]  # fmt: skip
    assert main(args) == 0
    data = bytearray((run / "last.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / "last.pt").write_bytes(bytes(data))
    capsys.readouterr()
    assert main([*args, "--steps", "4", "--resume", str(run / "last.pt")]) == 1
    line = one_error_line(capsys)
    assert "is damaged" in line and "different settings" not in line
    assert (run / "last.pt").read_bytes() == bytes(data)


# --- Ctrl-C --------------------------------------------------------------------------------------


def test_ctrl_c_in_video_says_what_was_kept_and_exits_130(tmp_path, person_png, monkeypatch, capsys):
    import lrpose.video

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrpose.video, "process_video", interrupted)
    assert main(["video", str(person_png), "--out", str(tmp_path / "out"), "--no-overlay"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "interrupted: finished tracks kept, run again with --resume" and "Traceback" not in err


# --- non-finite results, frame sizes, warnings ---------------------------------------------------


@pytest.fixture(scope="module")
def exploding(tmp_path_factory) -> Path:
    """Finite weights whose outputs overflow to NaN (shape head weights 3e38)."""
    torch.manual_seed(0)
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params())
    with torch.no_grad():
        net.regressor.decshape.weight.fill_(3e38)
    path = tmp_path_factory.mktemp("ck") / "exploding.pt"
    save(path, net, "standin-anny:test", trained=True)
    return path


def frames_folder(folder: Path, sizes: list[tuple[int, int]], person_px: int = 60) -> Path:
    """Image files ``000.png``... of the given (width, height) with a grey 'person' near the middle."""
    folder.mkdir(parents=True)
    for i, (w, h) in enumerate(sizes):
        img = np.zeros((h, w, 3), np.uint8)
        img[h // 2 - person_px // 2 : h // 2 + person_px // 2, w // 2 - person_px // 6 : w // 2 + person_px // 6] = 180
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


def boxes_json(path: Path, frames: dict[int, list[float]]) -> Path:
    import json

    path.write_text(json.dumps({"frames": {str(i): [box] for i, box in frames.items()}}))
    return path


def run_video(folder: Path, out: Path, weights: Path, boxes: Path, *extra: str) -> int:
    args = ["video", str(folder), "--out", str(out), "--weights", str(weights), "--boxes", str(boxes), "--min-track", "1",
            "--no-temporal", "--no-refine", "--no-overlay", *extra]  # fmt: skip
    return main(args)


def test_image_with_non_finite_outputs_writes_nothing(tmp_path, person_png, exploding, capsys):
    line = image_fails(capsys, person_png, tmp_path / "out", exploding)
    assert "NaN or infinite" in line and "exploding.pt" in line


def test_video_drops_non_finite_person_frames_with_a_counted_warning(tmp_path, exploding, capsys):
    from lrpose.results import read_summary

    folder = frames_folder(tmp_path / "clip", [(160, 120)] * 3)
    boxes = boxes_json(tmp_path / "b.json", {i: [70, 30, 90, 90] for i in range(3)})
    assert run_video(folder, tmp_path / "out", exploding, boxes) == 0
    err = capsys.readouterr().err
    assert "3 person-frame(s) had NaN or infinite estimates and were dropped" in err and "Traceback" not in err
    summary = read_summary(tmp_path / "out" / "clip")
    assert summary.nonfinite_person_frames == 3 and summary.tracks == []
    assert not list((tmp_path / "out" / "clip" / "tracks").iterdir())


def test_folder_whose_frames_change_size_is_refused_naming_the_frame(tmp_path, tiny64, capsys):
    folder = frames_folder(tmp_path / "clip", [(160, 120), (160, 120), (200, 150), (200, 150)])
    boxes = boxes_json(tmp_path / "b.json", {i: [70, 30, 90, 90] for i in range(4)})
    assert run_video(folder, tmp_path / "out", tiny64, boxes) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "002.png: frame 2 is 200x150" in errors[0] and "160x120" in errors[0] and "Traceback" not in err
    (track_file,) = (tmp_path / "out" / "clip" / "tracks").glob("*.npz")
    track = np.load(track_file)
    assert track["frame_ids"].tolist() == [0, 1]  # the frames before it only


def test_video_warns_once_about_boxes_past_the_end_and_small_people(tmp_path, tiny64, capsys):
    folder = frames_folder(tmp_path / "clip", [(160, 120)] * 3, person_px=16)
    boxes = boxes_json(
        tmp_path / "b.json", {0: [76, 52, 84, 68], 1: [76, 52, 84, 68], 2: [76, 52, 84, 68], 7: [1, 1, 9, 17], 9: [1, 1, 9, 17]}
    )
    assert run_video(folder, tmp_path / "out", tiny64, boxes) == 0
    err = capsys.readouterr().err
    past = [line for line in err.splitlines() if "past this video" in line]
    assert len(past) == 1 and "2 of the 5 boxes in --boxes" in past[0] and "3 frames" in past[0]
    assert err.count("below the 24 px") == 1 and "3 person-frame(s) have a crop below the 24 px" in err


# --- synth ---------------------------------------------------------------------------------------


def test_synth_n_is_validated_and_jobs_are_lazy(tmp_path, monkeypatch, capsys):
    import tracemalloc

    from lrpose.config import BodyConfig
    from lrpose.training import synth

    calls = []

    def job(args):  # no real work: stops at the third job
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return f"crops_{args[2]:05d}.npz"

    monkeypatch.setattr(synth, "_job", job)
    assert main(["synth", "--out", str(tmp_path / "s"), "--n", "1000000000000"]) == 1
    assert "--n must be at most 10,000,000" in one_error_line(capsys) and not (tmp_path / "s").exists() and not calls

    tracemalloc.start()
    with pytest.raises(KeyboardInterrupt):
        synth.generate(synth.SynthConfig(n=1_000_000, shard_size=1), BodyConfig(), tmp_path / "lazy")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert calls == [0, 1, 2] and peak < 5e6, peak  # a job list of 1e6 entries would take > 100 MB


def test_synth_out_that_is_a_file_or_unwritable(tmp_path, capsys):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    assert main(["synth", "--out", str(existing), "--n", "1"]) == 1
    assert "a file is in the way" in one_error_line(capsys) and existing.read_text() == "x"
    assert main(["synth", "--out", str(existing / "sub"), "--n", "1"]) == 1
    assert "cannot create the folder" in one_error_line(capsys)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_synth_out_read_only(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["synth", "--out", str(ro), "--n", "1", "--crop-size", "32", "--tex-size", "8"]) == 1
        assert "cannot write" in one_error_line(capsys)
    finally:
        ro.chmod(0o755)


# --- memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "gl"])
def test_overlay_of_a_large_image_is_rendered_at_a_capped_size(monkeypatch, backend):
    from lrpose import render, render_gl
    from lrpose.body import load_body

    if backend == "gl" and not render_gl.available():
        pytest.skip(f"no headless GL here: {render_gl.unavailable_reason()}")
    body = load_body()
    with torch.no_grad():
        v = body.forward_axis_angle(torch.zeros(1, 72)).vertices
    img = np.full((240, 320, 3), 30, np.uint8)
    trans = torch.tensor([[0.1, 0.2, 3.0]])
    full = render.render_overlay(img, v, body.faces, trans, 400.0, backend=backend)
    sizes = []
    rasterize, draw = render.rasterize, render_gl.draw
    monkeypatch.setattr(render, "rasterize", lambda s, f, h, w: sizes.append((h, w)) or rasterize(s, f, h, w))
    monkeypatch.setattr(render_gl, "draw", lambda c, f, col, foc, w, h: sizes.append((h, w)) or draw(c, f, col, foc, w, h))
    monkeypatch.setattr(render, "MAX_OVERLAY_SIDE", 160)
    small = render.render_overlay(img, v, body.faces, trans, 400.0, backend=backend)
    assert sizes == [(120, 160)] and small.shape == img.shape and small.dtype == np.uint8
    a, b = (full != 30).any(-1), (small != 30).any(-1)
    assert a.sum() > 2000 and (a & b).sum() / (a | b).sum() > 0.93
    assert np.array_equal(img, np.full_like(img, 30))  # the input is not drawn on
    same = render.render_overlay(img, v, body.faces, trans, 400.0, backend=backend, in_place=True)
    assert same is img and (img != 30).any()
