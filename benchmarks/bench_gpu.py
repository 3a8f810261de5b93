"""GPU speed of ``lrpose video --device cuda --no-overlay`` (issue 19's target: at least 100 frames/s for a 640x480
clip with 5 people) with each stage's share, and a check that CUDA and the CPU give the same people.

Prepared for a GPU machine; in this project it has not run on one yet. It refuses in one line (exit 1) where
torch sees no CUDA device, e.g. with the CPU-only torch of ``constraints-cpu.txt``: install a CUDA torch
first (``pip install torch torchvision --index-url https://download.pytorch.org/whl/cu124`` or the
machine's own), plus ``bash tools/install-yolo.sh`` for the YOLO detector (else HOG runs, on the CPU).

  python benchmarks/bench_gpu.py                          # about 2-4 minutes of GPU time, at most ~5
  python benchmarks/bench_gpu.py --no-check --json gpu.json -- --fast

What it runs (every ``lrpose video`` is its own process, each with a ``--timeout``):

1. the clip: ``examples/cctv_synthetic.mp4`` (640x480, 15 fps, 60 frames, 6 people 68-129 px tall: one
   more than the target's 5) repeated ``--repeat`` times (default 20: 1,200 frames; people jump at each
   repeat, so tracks restart there);
2. speed: one ``lrpose video --device cuda --no-overlay`` with two sources, the 1x clip first (warm-up: CUDA
   context, cuDNN, first kernels and allocations) and then the long clip, whose ``summary.json`` gives
   frames/s (time in the pipeline, after the models are loaded) and seconds per stage. On CUDA each stage's
   timer waits for the device, so the GPU's work lands (mostly) in the stage that queued it; decode + detect
   run in a thread beside the estimation, so the shares can add up to more than 100 %;
3. check (``--no-check`` skips it): the 1x clip with ``--device cpu`` and with ``--device cuda`` (both
   ``--det-runtime torch``): the same tracks, and how far their 2D joints lie apart (px); different float
   rounding can move a detection or end a fit elsewhere, so this reports, it does not fail.

Everything after ``--`` goes to every ``lrpose video`` run. ``--device cpu --repeat 1 --no-check`` is a dry run of
the script itself on a machine without CUDA (slow; the target is for CUDA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_video import make_long  # noqa: E402  (the clip repeated: one home, bench_video)

STAGES = ("decode", "detect", "track", "crop", "network", "temporal", "refine", "body", "write")
TARGET_FPS = 100.0


def lrpose_video(sources: list[Path], out: Path, device: str, extra: list[str], timeout: float) -> float:
    """One ``lrpose video`` process; returns its wall seconds (start-up and model loading included)."""
    cmd = [sys.executable, "-m", "lrpose", "video", *map(str, sources), "--out", str(out), "--device", device, "--no-overlay", *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"bench_gpu: lrpose video --device {device} took more than {timeout:.0f} s (--timeout)")
    if proc.returncode != 0:
        sys.exit(f"bench_gpu: lrpose video --device {device} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.perf_counter() - t0


def agreement(cpu: Path, cuda: Path) -> dict:
    """Tracks of two runs of one clip: ids in both, and per person-frame in both the largest 2D joint distance (px)."""
    a = {p.name: p for p in (cpu / "tracks").glob("*.npz")}
    b = {p.name: p for p in (cuda / "tracks").glob("*.npz")}
    worst = []
    for name in sorted(a.keys() & b.keys()):
        with np.load(a[name]) as x, np.load(b[name]) as y:
            _, i, j = np.intersect1d(x["frame_ids"], y["frame_ids"], return_indices=True)
            worst.extend(np.linalg.norm(x["joints2d"][i] - y["joints2d"][j], axis=-1).max(-1).tolist())
    d = np.array(worst) if worst else np.full(1, np.nan)
    return {
        "tracks_cpu": len(a), "tracks_cuda": len(b), "tracks_both": len(a.keys() & b.keys()), "person_frames": len(worst),
        "joints2d_px_median": float(np.median(d)), "joints2d_px_p95": float(np.percentile(d, 95)), "joints2d_px_max": float(d.max()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="examples/cctv_synthetic.mp4", help="A 640x480 clip with about 5 people.")
    ap.add_argument("--repeat", type=int, default=20, help="Times the clip is repeated for the speed run.")
    ap.add_argument("--no-check", action="store_true", help="Skip the CPU-vs-CUDA check (saves the CPU run).")
    ap.add_argument("--timeout", type=float, default=240.0, help="Seconds each lrpose video run may take.")
    ap.add_argument("--json", help="Also write the results here.")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a dry run of this script without CUDA.")
    ap.add_argument("extra", nargs="*", help="Options for lrpose video (after --).")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"bench_gpu: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False): run it on a GPU machine")
    clip = Path(args.clip)
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (dry run)"
    with tempfile.TemporaryDirectory() as tmp:
        long_clip = make_long(clip, Path(tmp) / f"{clip.stem}_x{args.repeat}.mp4", args.repeat)
        wall = lrpose_video([clip, long_clip], Path(tmp) / "speed", args.device, args.extra, args.timeout)
        s = json.loads((Path(tmp) / "speed" / long_clip.stem / "summary.json").read_text())
        check = None
        if not args.no_check:
            runtime = [] if "--det-runtime" in args.extra else ["--det-runtime", "torch"]
            for name, device in (("cpu", "cpu"), ("cuda", args.device)):  # the dry run checks cpu against cpu
                lrpose_video([clip], Path(tmp) / name, device, [*runtime, *args.extra], args.timeout)
            check = agreement(Path(tmp) / "cpu" / clip.stem, Path(tmp) / "cuda" / clip.stem)
    fps, total = s["frames_per_second"], s["seconds"]
    print(f"{gpu} | torch {torch.__version__} | clip {clip} x{args.repeat}: {s['frames']} frames {s['width']}x{s['height']}, "
          f"{s['kept_tracks']} kept tracks | options: --device {args.device} --no-overlay {' '.join(args.extra)}")  # fmt: skip
    print(f"detector: {s['detector']} | temporal: {s['temporal']} | RSC-Net: {s['checkpoint']}")
    verdict = "reached" if fps is not None and fps >= TARGET_FPS else "NOT reached"
    print(f"end to end: {fps} frames/s ({total:.1f} s in the pipeline; {wall:.1f} s wall for warm-up + this clip, start-up included)"
          f" | target {TARGET_FPS:.0f} frames/s {verdict}")  # fmt: skip
    print("| stage | seconds | share | frames/s |\n|---|---|---|---|")
    for k in STAGES:
        v = s["seconds_per_stage"].get(k, 0.0)
        print(f"| {k} | {v:.2f} | {100 * v / total:.1f} % | {s['frames'] / v if v > 0 else float('inf'):.0f} |")
    if check is not None:
        c = check
        print(f"CPU vs CUDA on the 1x clip: {c['tracks_both']} tracks in both (cpu {c['tracks_cpu']}, cuda {c['tracks_cuda']}), "
              f"{c['person_frames']} person-frames; largest 2D joint distance per person-frame: median "
              f"{c['joints2d_px_median']:.3f} px, 95 % {c['joints2d_px_p95']:.3f} px, max {c['joints2d_px_max']:.2f} px")  # fmt: skip
    if args.json:
        result = {"gpu": gpu, "torch": torch.__version__, "summary": s, "wall_s": wall, "check": check}
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
