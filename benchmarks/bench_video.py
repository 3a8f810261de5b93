"""End-to-end and per-stage speed of ``lrpose video``, and peak memory for 1x vs 10x the clip length.

  python benchmarks/bench_video.py --clip examples/cctv_synthetic.mp4                 # the defaults
  python benchmarks/bench_video.py --load 2 -- --fast --no-overlay                     # beside 2 busy processes

Everything after ``--`` is passed to ``lrpose video``. Each run is a fresh process; its peak RSS
comes from ``getrusage(RUSAGE_CHILDREN)``, measured in a fresh helper process per run. The 10x clip
repeats the input's frames ten times (people jump at each loop, so tracks restart). ``--load N``
runs N busy processes (single-threaded matrix products) beside it: a machine doing other work.
The render and encode stages run in their own thread beside the others, so the shares can add up
to more than 100 %.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("decode", "detect", "track", "crop", "network", "temporal", "refine", "body", "render", "encode", "write")
BUSY = "import torch; torch.set_num_threads(1); a = torch.rand(256, 256)\nwhile True: a = (a @ a).clamp(-1, 1)"


def make_long(clip: Path, out: Path, repeat: int) -> Path:
    """``clip`` repeated ``repeat`` times into ``out`` (same size and fps); also used by ``bench_gpu.py``."""
    from lrpose.io import FrameSource, VideoWriter

    src = FrameSource(clip)
    with VideoWriter(out, src.fps, src.width, src.height) as w:
        for _ in range(repeat):
            for f in src:
                w.write(f.image)
    return out


def run(clip: Path, out: Path, extra: list[str]) -> dict:
    """One ``lrpose video`` in a child process; summary + wall time + the child's peak RSS (MiB)."""
    code = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "lrpose", "video", str(clip), "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"lrpose video failed:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / clip.stem / "summary.json").read_text())
    return {"summary": summary, "wall_s": wall, "peak_rss_mib": int(proc.stdout.strip().splitlines()[-1]) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="examples/cctv_synthetic.mp4")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--json", help="Also write the results here.")
    ap.add_argument("--load", type=int, default=0, help="Busy processes beside the runs.")
    ap.add_argument("extra", nargs="*", help="Options for lrpose video (after --).")
    args = ap.parse_args()
    clip = Path(args.clip)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            long_clip = make_long(clip, Path(tmp) / f"{clip.stem}_x{args.repeat}.mp4", args.repeat)
            one = run(clip, Path(tmp) / "one", args.extra)
            many = run(long_clip, Path(tmp) / "many", args.extra)
    finally:
        for p in busy:
            p.kill()
    s = one["summary"]
    total = s["seconds"]
    print(f"clip {clip} ({s['frames']} frames {s['width']}x{s['height']}, {s['kept_tracks']} people) | options: {' '.join(args.extra)}"
          f" | load: {args.load} busy processes")  # fmt: skip
    print(f"detector: {s['detector']} | temporal: {s['temporal']} | RSC-Net: {s['checkpoint']}")
    print(f"end to end: {s['frames_per_second']} frames/s ({total:.1f} s in the pipeline, {one['wall_s']:.1f} s wall incl. start-up)")
    print("| stage | seconds | share | frames/s |\n|---|---|---|---|")
    for k in STAGES:
        v = s["seconds_per_stage"].get(k, 0.0)
        print(f"| {k} | {v:.2f} | {100 * v / total:.1f} % | {s['frames'] / v if v > 0 else float('inf'):.0f} |")
    ratio = many["peak_rss_mib"] / one["peak_rss_mib"]
    print(f"peak RSS: {one['peak_rss_mib']:.0f} MiB (1x, {s['frames']} frames) vs {many['peak_rss_mib']:.0f} MiB "
          f"({args.repeat}x, {many['summary']['frames']} frames): ratio {ratio:.3f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"one": one, "many": many, "rss_ratio": ratio, "load": args.load}, indent=1))


if __name__ == "__main__":
    main()
