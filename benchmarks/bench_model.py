"""RSC-Net inference speed on this machine: crops/s by backbone, input size and batch size.

Run by hand: ``python benchmarks/bench_model.py [--threads 2] [--seconds 3]``; record results in
benchmarks/RESULTS.md with the machine and date. Measures the network only (no cropping, no
body model), eval mode, ``torch.no_grad``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lrpose.models.regressor import MeanParams
from lrpose.models.rscnet import RSCNet, RSCNetConfig

CASES = [("resnet", 50, 224), ("resnet", 34, 128), ("resnet", 18, 128), ("resnet", 18, 96), ("resnet", 18, 64),
         ("mobilenetv2", 0, 64), ("mobilenetv2", 0, 96), ("mobilenetv2", 0, 128),
         ("yolopose", 0, 64), ("yolopose", 0, 96), ("yolopose", 0, 128)]  # fmt: skip
NAMES = {"mobilenetv2": "MobileNetV2", "yolopose": "YOLO11n-pose"}
BATCHES = [1, 8, 32]


def crops_per_second(net: RSCNet, size: int, batch: int, seconds: float, cpu_time: bool = False) -> float:
    """Crops per second of wall time, or with ``cpu_time`` per second of this process's CPU time (what one
    dedicated core would do with one thread: comparable on a busy machine, where wall time is not)."""
    clock = time.process_time if cpu_time else time.perf_counter
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        net(x, 2)  # warm-up
        n, t0 = 0, clock()
        while clock() - t0 < seconds or n < 2:
            net(x, 2)
            n += 1
        return n * batch / (clock() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--cpu-time", action="store_true", help="per CPU-second of this process (use with --threads 1 on a busy machine)")
    ap.add_argument("--only", choices=["resnet", "mobilenetv2", "yolopose"], default=None, help="one backbone family")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mean = MeanParams(np.zeros(144, np.float32), np.zeros(10, np.float32), np.array([0.9, 0, 0], np.float32), "bench")
    clock = "CPU" if args.cpu_time else "wall"
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, crops per {clock} second")
    print("| backbone | input | params (M) | " + " | ".join(f"batch {b} crops/s" for b in BATCHES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in BATCHES) + " |")
    for backbone, depth, size in CASES:
        if args.only and backbone != args.only:
            continue
        net = RSCNet(RSCNetConfig(backbone=backbone, depth=depth or 50, input_size=size), mean).eval()
        name = f"ResNet-{depth}" if backbone == "resnet" else NAMES[backbone]
        params = sum(p.numel() for p in net.parameters()) / 1e6
        rates = [crops_per_second(net, size, b, args.seconds, args.cpu_time) for b in BATCHES]
        print(f"| {name} | {size} | {params:.1f} | " + " | ".join(f"{r:.1f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()
