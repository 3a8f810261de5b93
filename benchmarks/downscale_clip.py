"""A synthetic clip and its ground truth shrunk by an integer factor (people k times smaller).

  python benchmarks/downscale_clip.py examples/cctv_synthetic.mp4 examples/cctv_synthetic_gt.npz 2 /tmp/clips

Frames are shrunk with area averaging (``cv2.INTER_AREA``) and written as x264 CRF 12; the ground
truth's 2D quantities (boxes, ``joints2d``, ``part``, ``center_px``, ``focal_px``, ``pixels``) are
scaled to match (pixel centres at integers: ``u' = (u + 0.5) / k - 0.5``), 3D quantities stay.
Writes ``<stem>_<k>x.mp4`` and ``<stem>_<k>x_gt.npz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def shrink_truth(gt: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The ground truth of a clip shrunk ``k`` times: 2D keys scaled, the rest as they are."""
    out = dict(gt)
    out["boxes"] = gt["boxes"] / k  # corners: edges scale exactly
    for key in ("joints2d",):
        out[key] = (gt[key] + 0.5) / k - 0.5
    part = gt["part"].copy()
    part[..., :2] = (part[..., :2] + 0.5) / k - 0.5
    out["part"] = part
    out["center_px"] = (gt["center_px"] + 0.5) / k - 0.5
    out["focal_px"] = gt["focal_px"] / k
    out["pixels"] = np.round(gt["pixels"] / k).astype(gt["pixels"].dtype)
    return out


def main() -> None:
    import av

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("gt", type=Path)
    ap.add_argument("factor", type=int)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"{a.clip.stem}_{a.factor}x"
    with av.open(str(a.clip)) as src, av.open(str(a.out / f"{stem}.mp4"), "w") as dst:
        vin = src.streams.video[0]
        w, h = vin.codec_context.width // a.factor // 2 * 2, vin.codec_context.height // a.factor // 2 * 2
        vout = dst.add_stream("libx264", rate=vin.average_rate, options={"crf": "12"})
        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
        for frame in src.decode(vin):
            small = cv2.resize(frame.to_ndarray(format="rgb24"), (w, h), interpolation=cv2.INTER_AREA)
            dst.mux(vout.encode(av.VideoFrame.from_ndarray(small, format="rgb24")))
        dst.mux(vout.encode())
    gt = dict(np.load(a.gt))
    np.savez_compressed(a.out / f"{stem}_gt.npz", **shrink_truth(gt, a.factor))
    print(a.out / f"{stem}.mp4")


if __name__ == "__main__":
    main()
