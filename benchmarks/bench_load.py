"""``lrpose video`` speed on an idle and on a deliberately loaded machine, and the ratio.

  python benchmarks/bench_load.py --frames 30 --threads 0 --threads 2
  python benchmarks/bench_load.py --threads -1 --pythonpath /tmp/old_lrpose   # an older lrpose, no --threads flag

The clip's first ``--frames`` frames are copied to a temporary video; for each ``--threads`` value
``lrpose video`` runs once with the machine as it is ("idle") and once while this script keeps
``--burners`` CPU-burning processes (default: one per usable core) running, which it starts before
and kills after the run. Speed is frames / wall seconds of the whole command (start-up included).
The target is loaded >= 0.4x idle. The 1-minute load average before each run is reported, since a
shared machine is never fully idle.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BURN = "import signal, sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nwhile True: pass"


def make_clip(clip: Path, out: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``clip`` as a new video."""
    from lrpose.io import FrameSource, VideoWriter

    src = FrameSource(clip)
    with VideoWriter(out, src.fps, src.width + src.width % 2, src.height + src.height % 2) as w:
        for k, f in enumerate(src):
            if k >= frames:
                break
            w.write(f.image)
    return out


def run_video(clip: Path, out: Path, threads: int, extra: list[str], pythonpath: str | None = None) -> tuple[float, float]:
    """(frames/s, 1-minute load average just before) of one ``lrpose video`` run in a child process."""
    from lrpose.io import FrameSource

    frames = FrameSource(clip).frame_count
    load = os.getloadavg()[0]
    flag = ["--threads", str(threads)] if threads >= 0 else []  # -1: no flag (an lrpose without --threads: torch's default)
    cmd = [sys.executable, "-m", "lrpose", "video", str(clip), "--out", str(out), *flag, *extra]
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"lrpose video failed:\n{proc.stderr[-2000:]}")
    return frames / wall, load


def burners(n: int) -> list[subprocess.Popen]:
    """``n`` busy-looping processes (the load); wait until the load average notices them a little."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]
    time.sleep(2)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="examples/cctv_synthetic.mp4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, action="append", help="--threads values to compare (repeatable; default 0; -1: no flag).")
    ap.add_argument("--pythonpath", help="Run the lrpose found here (e.g. an older version's source tree) instead.")
    ap.add_argument("--burners", type=int, default=1, help="CPU-burning processes during the loaded run.")
    ap.add_argument("extra", nargs="*", help="Options for lrpose video (after --).")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"# {datetime.date.today()} | {platform.node()} | {cores} cores | {platform.processor() or platform.machine()}")
    print(f"# lrpose video, first {args.frames} frames of {args.clip} {' '.join(args.extra)}; load: {args.burners} busy-loop process(es)")
    print("| --threads | idle frames/s (load avg before) | loaded frames/s (load avg before) | loaded / idle |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(args.clip), Path(tmp) / "clip.mp4", args.frames)
        for threads in args.threads or [0]:
            idle, idle_load = run_video(clip, Path(tmp) / f"idle{threads}", threads, args.extra, args.pythonpath)
            procs = burners(args.burners)
            try:
                loaded, loaded_load = run_video(clip, Path(tmp) / f"loaded{threads}", threads, args.extra, args.pythonpath)
            finally:
                stop(procs)
            print(f"| {threads} | {idle:.2f} ({idle_load:.1f}) | {loaded:.2f} ({loaded_load:.1f}) | {loaded / idle:.2f} |", flush=True)


if __name__ == "__main__":
    main()
