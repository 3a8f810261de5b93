"""Synthetic data engine speed: crops/s (224 px) with 1 and 2 worker processes, and video frames/s.

Run by hand: ``python benchmarks/bench_synth.py``; record in benchmarks/RESULTS.md with machine and date.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from lrpose.config import BodyConfig
from lrpose.training.synth import SynthConfig, generate


def main() -> None:
    body = BodyConfig()
    with tempfile.TemporaryDirectory() as tmp:
        generate(SynthConfig(kind="crops", n=8, shard_size=8), body, Path(tmp) / "warm")
        for workers in (1, 2):
            cfg = SynthConfig(kind="crops", n=512, shard_size=64, workers=workers, seed=1)
            t0 = time.perf_counter()
            generate(cfg, body, Path(tmp) / f"crops{workers}")
            dt = time.perf_counter() - t0
            print(f"crops 224 px, {workers} worker(s): {cfg.n / dt:.1f} crops/s ({dt:.1f} s for {cfg.n})", flush=True)
        cfg = SynthConfig(kind="video", n=2, seconds=4.0, fps=15, seed=1)
        t0 = time.perf_counter()
        generate(cfg, body, Path(tmp) / "video")
        dt = time.perf_counter() - t0
        frames = cfg.n * int(cfg.seconds * cfg.fps)
        print(f"video 640x480, 1-6 people, 1 worker: {frames / dt:.1f} frames/s ({dt:.1f} s for {frames})", flush=True)


if __name__ == "__main__":
    main()
