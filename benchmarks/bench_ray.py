"""``lrpose video --ray`` against the plain command on the same videos and the same total threads.

  python benchmarks/bench_ray.py [--videos 8] [--frames 12]

Cuts ``examples/cctv_synthetic.mp4`` into short clips, then times (wall clock, whole command)
``lrpose video DIR --no-overlay`` one video after another with 2 and with 1 torch thread, and
``lrpose video DIR --no-overlay --ray --workers 2 --task-cpus 1`` (a local Ray instance started
by the command). Target: Ray <= 1.1x the plain time (the faster of the two).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent


def cut(src: Path, folder: Path, videos: int, frames: int) -> None:
    folder.mkdir(parents=True)
    for k in range(videos):
        with av.open(str(src)) as inp, av.open(str(folder / f"clip{k}.mp4"), "w") as out:
            st = out.add_stream("libx264", rate=15)
            st.width, st.height, st.pix_fmt = 640, 480, "yuv420p"
            start = (k * 5) % 40
            for i, fr in enumerate(inp.decode(video=0)):
                if start <= i < start + frames:
                    out.mux(st.encode(av.VideoFrame.from_ndarray(fr.to_ndarray(format="rgb24"), format="rgb24")))
            out.mux(st.encode())


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lrpose", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=12)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        cut(ROOT / "examples" / "cctv_synthetic.mp4", clips, a.videos, a.frames)
        common = ["video", str(clips), "--no-overlay"]
        plain2 = timed([*common, "--out", str(Path(tmp) / "plain2"), "--threads", "2"])
        plain1 = timed([*common, "--out", str(Path(tmp) / "plain1"), "--threads", "1"])
        ray = timed([*common, "--out", str(Path(tmp) / "ray"), "--ray", "--workers", "2", "--task-cpus", "1"])
    print(f"{a.videos} videos x {a.frames} frames: plain (2 threads) {plain2:.1f} s, plain (1 thread) {plain1:.1f} s, ", end="")
    print(f"ray (2 workers x 1 thread) {ray:.1f} s; ratio to the faster plain run {ray / min(plain1, plain2):.2f}")


if __name__ == "__main__":
    main()
