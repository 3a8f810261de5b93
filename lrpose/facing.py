"""Which way a person faces: towards the camera or away from it.

One convention everywhere (the refiner's front/back choice, the benchmarks' facing agreement):
a person faces the camera when their own left side appears on the image's right. From 2D keypoints
that is the sign of ``up x (left - right)`` over the shoulder and hip pairs, with ``up`` the image
direction from the hips to the shoulders (so it also holds for a leaning or lying person); from a
body, the sign of its forward axis along the camera's viewing direction.
"""

from __future__ import annotations

import torch

LEFT, RIGHT = (5, 11), (6, 12)
"""COCO-17 left and right shoulder and hip."""


def keypoint_facing(uv: torch.Tensor, conf: torch.Tensor, heights: torch.Tensor) -> torch.Tensor:
    """(..., 17, 2) pixel keypoints with (..., 17) confidences (0 = absent) of people ``heights`` (...)
    px tall -> (...) signed facing evidence: the confidence-weighted mean of ``up x (left - right)``
    over the shoulder and hip pairs in units of the height; > 0 towards the camera, < 0 away, ~0 side
    on or unknown. A frontal adult gives about +0.17 (shoulders ~0.22 h, hips ~0.12 h apart)."""
    left, right = uv[..., LEFT, :], uv[..., RIGHT, :]
    w = torch.minimum(conf[..., LEFT], conf[..., RIGHT])  # (..., 2): a pair counts as much as its weaker end
    mid = (left + right) / 2.0
    torso = mid[..., 0, :] - mid[..., 1, :]  # hips -> shoulders, pixels
    both = (w > 0).all(-1, keepdim=True)
    up = torch.where(both, torso, torch.tensor([0.0, -1.0], dtype=uv.dtype, device=uv.device).expand_as(torso))
    up = up / up.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    d = left - right  # (..., 2, 2)
    cross = up[..., None, 0] * d[..., 1] - up[..., None, 1] * d[..., 0]
    return (w * cross).sum(-1) / w.sum(-1).clamp_min(1e-6) / heights.clamp_min(1e-6)


def body_faces_camera(root: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) root (global) rotations in the camera frame (x right, y down, z forward) -> (...)
    bool: the body's forward axis points back at the camera."""
    return root[..., 2, 2] < 0


def turn_around(rotmats: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3, 3) bodies turned 180 degrees about their own vertical (y) axis (the root only)."""
    turn = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=rotmats.dtype, device=rotmats.device))
    out = rotmats.clone()
    out[:, 0] = rotmats[:, 0] @ turn
    return out
