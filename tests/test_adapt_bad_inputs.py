"""``lrpose adapt``'s bad input (issue 15): a base that is not RSC-Net, an unwritable ``--out``, footage
whose people are all below the smallest range or too few to learn from. Each answers in one ``error:``
line with exit code 1 and leaves neither the checkpoint nor its run folder. Tiny generated inputs, CPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lrpose.cli import main
from tests.test_bad_inputs import one_error_line
from tests.test_video import make_video

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def adapt_args(video: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["adapt", str(video), "--out", str(out), "--weights", str(weights), *extra]


def nothing_written(out: Path) -> None:
    assert not out.exists() and not out.with_name(out.name + ".run").exists()
    assert not [p for p in out.parent.glob(".*") if p.is_file()]  # no atomic-write temporaries


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("lrpose_temporal.pt", ("temporal-module (GRU) checkpoint, not RSC-Net", "it belongs to lrpose_rscnet.pt:")),
        ("lrpose_texture.pt", ("texture-network checkpoint, not RSC-Net",)),
        ("backbone_yolopose_coco.pt", ("pretrained-backbone file (no SMPL regressor), not RSC-Net",)),
    ],
)
def test_base_of_another_network_is_refused_in_its_own_words(name, words, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"never read: the base is checked first")
    out = tmp_path / "adapted.pt"
    assert main(adapt_args(video, out, WEIGHTS / name)) == 1
    line = one_error_line(capsys, *words)
    assert line.startswith(f"error: --weights {WEIGHTS / name} is an") or line.startswith(f"error: --weights {WEIGHTS / name} is a ")
    nothing_written(out)


def test_unwritable_output_is_refused_before_any_work(tiny, tmp_path, capsys, monkeypatch):
    """As root a read-only folder is still writable, so the permission answer is faked (``os.access``)."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"never read: the output is checked first")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == locked else real(p, mode, **k))
    out = locked / "adapted.pt"
    try:
        assert main(adapt_args(video, out, tiny)) == 1
        one_error_line(capsys, f"cannot write {out}: permission denied")
        nothing_written(out)
    finally:
        locked.chmod(0o755)


def walkers(path: Path, frames: int, height: float) -> dict:
    """``make_video``'s clip with boxes ``height`` px tall and 17 confident keypoints each (a fake pose detector)."""
    gt = make_video(path, frames, {0: range(frames), 1: range(frames)})
    rows = {}
    for f, boxes in gt["frames"].items():
        rows[f] = []
        for x1, y1, _, _ in boxes:
            box = [x1, y1 + 10.0, x1 + height / 2, y1 + 10.0 + height]
            kp = np.stack([np.linspace(box[0], box[2], 17), np.linspace(box[1], box[3], 17), np.full(17, 0.9)], 1)
            rows[f].append({"box": box, "score": 0.9, "keypoints": kp.round(2).tolist()})
    return {"frames": rows}


def test_everyone_below_the_smallest_range_is_one_line(tiny, tmp_path, capsys):
    (tmp_path / "boxes.json").write_text(json.dumps(walkers(tmp_path / "small.mp4", 16, height=16.0)))  # crop side 19 px < 24
    out = tmp_path / "a.pt"
    code = main(adapt_args(tmp_path / "small.mp4", out, tiny, "--boxes", str(tmp_path / "boxes.json"), "--frame-stride", "1"))
    assert code == 1
    one_error_line(capsys, "every person in the footage is below 24 px", "nothing to adapt to")
    assert not out.exists()


def test_too_few_usable_people_is_one_line(tiny, tmp_path, capsys):
    """40 px tall people pass the size check, but 16 frames of 2 people cannot give --min-labels 64 pseudo-labels."""
    (tmp_path / "boxes.json").write_text(json.dumps(walkers(tmp_path / "few.mp4", 16, height=60.0)))
    out = tmp_path / "a.pt"
    code = main(adapt_args(tmp_path / "few.mp4", out, tiny, "--boxes", str(tmp_path / "boxes.json"), "--frame-stride", "1"))
    assert code == 1
    line = one_error_line(capsys, "too few usable people:", "(need 64)", "give more or longer footage")
    assert int(line.split("too few usable people: ")[1].split()[0]) < 64
    assert not out.exists()


@pytest.mark.parametrize(("option", "value", "words"), [("--temporal-steps", "-1", "--temporal-steps must be 0"),
                                                        ("--chunk", "1", "--chunk must be at least 2"),
                                                        ("--window", "0", "--window must be at least 1")])  # fmt: skip
def test_bad_temporal_and_window_options_are_one_line(option, value, words, tiny, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"never read: options are checked first")
    out = tmp_path / "adapted.pt"
    assert main(adapt_args(video, out, tiny, option, value)) == 1
    one_error_line(capsys, words)
    nothing_written(out)
