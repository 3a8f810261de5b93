"""Peak memory of ``lrpose image`` on a huge photo (issue 20: target < 2 GB for 12000 x 12000).

Writes a synthetic JPEG (a gradient with a person-sized block), runs ``python -m lrpose image`` on
it in a child process and reports the child's peak resident set size (``getrusage``), with the
machine's cores, load average and date for benchmarks/RESULTS.md.

  python benchmarks/image_memory.py --side 12000
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_photo(path: Path, side: int) -> None:
    """A (side, side) RGB JPEG: horizontal gradient plus a tall block where a person would stand."""
    img = np.empty((side, side, 3), np.uint8)
    img[:] = np.linspace(40, 200, side, dtype=np.float32).astype(np.uint8)[None, :, None]
    img[side // 6 : side * 5 // 6, side * 5 // 12 : side * 7 // 12] = (90, 60, 200)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=12000, help="Photo side in pixels.")
    ap.add_argument("--extra", nargs="*", default=["--no-refine"], help="More lrpose image options.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / f"photo_{args.side}.jpg"
        make_photo(photo, args.side)
        load = os.getloadavg()
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "lrpose", "image", str(photo), "--out", str(Path(tmp) / "out"), *args.extra],
                           capture_output=True, text=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
    if r.returncode != 0:
        raise SystemExit(f"lrpose image failed ({r.returncode}): {r.stderr.strip()}")
    print(f"{datetime.date.today()} | {platform.machine()} {os.cpu_count()} cores | load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"lrpose image {args.side}x{args.side} ({args.side**2 * 3 / 2**30:.2f} GiB RGB): peak RSS {peak_mb:.0f} MB, {seconds:.1f} s")


if __name__ == "__main__":
    main()
