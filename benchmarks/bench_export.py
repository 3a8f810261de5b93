"""Export speed and size: a 600-frame, 5-person result -> animated .glb and BVH.

  python benchmarks/bench_export.py RESULTS_FOLDER   # a lrpose video results folder (holds tracks/)

The folder's first track is repeated in time to 600 frames and copied to 5 tracks (every key of a
real track file, so the .npz sizes are real), then exported; reports seconds and bytes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lrpose.body import load_body
from lrpose.export_tracks import export_run
from lrpose.files import save_npz
from lrpose.results import read_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--people", type=int, default=5)
    args = ap.parse_args()
    track = read_result(sorted((args.folder / "tracks").glob("*.npz"))[0])
    t0 = len(track["frame_ids"])
    reps = -(-args.frames // t0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        (run / "tracks").mkdir(parents=True)
        for p in range(args.people):
            long = {k: (np.concatenate([v] * reps)[: args.frames] if v.ndim and v.shape[0] == t0 else v) for k, v in track.items()}
            long["frame_ids"] = np.arange(args.frames)
            long["time_s"] = long["frame_ids"] / float(track["fps"])
            long["track_id"] = np.array(p)
            save_npz(run / "tracks" / f"{p:04d}.npz", long)
        npz = sum(f.stat().st_size for f in (run / "tracks").glob("*.npz"))
        body = load_body()
        for fmt in ("glb", "bvh"):
            start = time.perf_counter()
            files = export_run(run, body, (fmt,))
            took = time.perf_counter() - start
            size = sum(f.stat().st_size for f in files)
            ratio = f"{size / npz:.2f}x the track files' {npz / 1e6:.2f} MB"
            print(f"{fmt}: {args.people} tracks x {args.frames} frames in {took:.2f} s, {size / 1e6:.2f} MB ({ratio})")


if __name__ == "__main__":
    main()
