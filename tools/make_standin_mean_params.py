"""Make ``weights/standin_mean_params.npz``: the iterative regressor's starting point for the stand-in body.

SPIN's ``smpl_mean_params.npz`` is the mean of its training poses, which are licensed data; we
cannot ship or recompute it. Ours is a relaxed standing person facing the camera:
- pose: root rotated 180 deg about x (SMPL is Y-up, the camera frame is Y-down, as in SPIN),
  shoulders lowered 72 deg from the T-pose (arms down beside the body), every other joint zero;
- shape: zeros (the stand-in's betas are zero-mean by construction);
- cam ``[s, tx, ty]``: the weak-perspective camera that puts that body, centred, into a crop whose
  side is 1.2x the body's height (SPIN's box padding): ``s = (2 / 1.2) / height``,
  ``t = -(bounding-box centre)``.

Usage: python tools/make_standin_mean_params.py [--out weights/standin_mean_params.npz]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from lrpose import assets
from lrpose.body import BodyModel
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_rot6d

ARM_DROP_RAD = math.radians(72.0)


def mean_pose_axis_angle() -> torch.Tensor:
    """(24, 3) axis-angle of the mean pose."""
    pose = torch.zeros(24, 3)
    pose[0] = torch.tensor([math.pi, 0.0, 0.0])
    pose[16] = torch.tensor([0.0, 0.0, -ARM_DROP_RAD])  # left arm (+x) rotates down
    pose[17] = torch.tensor([0.0, 0.0, ARM_DROP_RAD])
    return pose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="weights/standin_mean_params.npz")
    args = ap.parse_args()
    body = BodyModel.from_standin(assets.resolve("standin_body"))
    aa = mean_pose_axis_angle()
    with torch.no_grad():
        v = body.forward_axis_angle(aa.reshape(1, 72)).vertices[0]
    lo, hi = v.min(0).values, v.max(0).values
    height = float(hi[1] - lo[1])
    center = (lo + hi) / 2
    cam = np.array([(2.0 / 1.2) / height, -float(center[0]), -float(center[1])], np.float32)
    pose6d = rotmat_to_rot6d(axis_angle_to_rotmat(aa)).reshape(-1).numpy().astype(np.float32)
    np.savez(args.out, pose=pose6d, shape=np.zeros(10, np.float32), cam=cam)
    print(f"height {height:.3f} m, cam {cam.round(4).tolist()} -> {args.out}")


if __name__ == "__main__":
    main()
