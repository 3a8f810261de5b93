"""YOLO detector runtimes (``--det-runtime``): network-only time per frame and end-to-end ``lrpose video``.

  python benchmarks/bench_yolo_runtime.py                          # torch, openvino, onnx (those installed)
  python benchmarks/bench_yolo_runtime.py --runtimes torch,openvino --repeats 3 --json out.json

Network only: one fresh process per (runtime, threads), the example clip's first frame letterboxed to
the default detector's full look (1280 px longer side: 1280x960 for a 640x480 clip), NMS included;
median wall ms and CPU ms per frame over ``--frames`` runs after two warm-up runs, and the process's
peak RSS. End to end: ``lrpose video`` on the clip with each runtime (defaults otherwise,
``--threads`` as given), frames/s from its summary, peak RSS from ``getrusage(RUSAGE_CHILDREN)``,
runs interleaved over ``--repeats`` rounds so a changing machine load hits every runtime alike.
The 1-minute load average is printed with every number: on a shared machine it is part of the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NET = r"""
import json, os, resource, sys, time
import numpy as np, torch
threads = int(sys.argv[3]); torch.set_num_threads(threads)
from lrpose import assets
from lrpose.detect import YoloDetector
from lrpose.io import FrameSource
image = next(iter(FrameSource(sys.argv[1]))).image
det = YoloDetector(assets.resolve("detector"), det_size=1280, runtime=sys.argv[2])
assert det.runtime == sys.argv[2], (det.runtime, det.runtime_warning)
for _ in range(2):
    det(image, 0)
walls, cpus = [], []
for _ in range(int(sys.argv[4])):
    t, c = time.perf_counter(), time.process_time()
    n = len(det(image, 0).boxes_xyxy)
    walls.append(time.perf_counter() - t); cpus.append(time.process_time() - c)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_ms": 1000 * float(np.median(walls)), "cpu_ms": 1000 * float(np.median(cpus)), "people": n, "peak_rss_mib": rss}))
"""

CHILD = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(r.stderr[-2000:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def network(clip: Path, runtime: str, threads: int, frames: int) -> dict:
    """Network-only numbers of one runtime at ``threads`` threads, in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    before = load()
    cmd = [sys.executable, "-c", NET, str(clip), runtime, str(threads), str(frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{runtime} network run failed:\n{proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": (before + load()) / 2}


def video(clip: Path, runtime: str, threads: int, out: Path) -> dict:
    """One ``lrpose video`` run with ``runtime``: frames/s (the pipeline's), wall seconds, peak RSS (MiB)."""
    cmd = [sys.executable, "-c", CHILD, sys.executable, "-m", "lrpose", "video", str(clip), "--out", str(out), "--det-runtime", runtime]
    cmd += ["--threads", str(threads)] if threads else []
    before, t0 = load(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"lrpose video --det-runtime {runtime} failed:\n{proc.stderr[-2000:]}")
    s = json.loads((out / clip.stem / "summary.json").read_text())
    return {
        "frames_per_second": s["frames_per_second"], "detect_s": s["seconds_per_stage"].get("detect", 0.0), "wall_s": wall,
        "peak_rss_mib": int(proc.stdout.strip().splitlines()[-1]) / 1024, "load": (before + load()) / 2, "detector": s["detector"],
    }  # fmt: skip


def main() -> None:
    from lrpose.yolo_runtime import runtime_problem

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="examples/cctv_synthetic.mp4")
    ap.add_argument("--runtimes", default="torch,openvino,onnx", help="Comma-separated; those not installed are skipped.")
    ap.add_argument("--threads", default="1,2", help="Thread counts of the network-only runs.")
    ap.add_argument("--frames", type=int, default=10, help="Timed frames per network-only run.")
    ap.add_argument("--video-threads", type=int, default=1, help="lrpose video --threads (0: its automatic choice).")
    ap.add_argument("--repeats", type=int, default=2, help="Rounds of end-to-end runs (runtimes interleaved).")
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--json", help="Also write the results here.")
    args = ap.parse_args()
    clip = Path(args.clip)
    runtimes = [r for r in args.runtimes.split(",") if r == "torch" or runtime_problem(r) is None]
    print(f"machine: {os.cpu_count()} cores | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | clip {clip} | runtimes {runtimes}")
    results: dict = {"network": {}, "video": {}}
    print("| runtime | threads | wall ms/frame | CPU ms/frame | people | peak RSS MiB | load |\n|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        for rt in runtimes:
            r = network(clip, rt, threads, args.frames)
            results["network"][f"{rt}/{threads}"] = r
            cells = f"{r['wall_ms']:.0f} | {r['cpu_ms']:.0f} | {r['people']} | {r['peak_rss_mib']:.0f} | {r['load']:.2f}"
            print(f"| {rt} | {threads} | {cells} |")
    if not args.skip_video:
        print(f"\nlrpose video {clip} --threads {args.video_threads}")
        print("| runtime | round | frames/s | detect s | wall s | peak RSS MiB | load |\n|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                for rt in runtimes:
                    r = video(clip, rt, args.video_threads, Path(tmp) / f"{rt}{i}")
                    results["video"].setdefault(rt, []).append(r)
                    print(f"| {rt} | {i} | {r['frames_per_second']} | {r['detect_s']:.1f} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | "
                          f"{r['load']:.2f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
