"""Network outputs -> posed bodies and cameras in image terms (``body_geometry``), the last step of
``Pipeline.estimate``: runs on the outputs' device, one move to the host per batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.crops import SquareCrop, apply_affine
from lrpose.device import host
from lrpose.geometry import cam_crop_to_full, focal_for, rotmat_to_axis_angle, weak_perspective_project


@dataclass(frozen=True)
class BodyGeometry:
    """Network outputs turned into posed bodies and cameras, (B, ...) numpy float32."""

    pose: np.ndarray
    """(B, 72) axis-angle."""
    joints3d: np.ndarray
    """(B, 24, 3) metres, camera-frame orientation, before translation."""
    joints2d: np.ndarray
    """(B, 24, 2) full-image pixels (weak perspective through each crop)."""
    vertices: np.ndarray
    """(B, V, 3) metres, before translation."""
    trans: np.ndarray
    """(B, 3) full-frame translation (metres) for ``focal_px`` and the image centre."""
    orig_cam: np.ndarray
    """(B, 4) VIBE's full-image weak-perspective camera ``[sx, sy, tx, ty]``."""
    focal_px: float


def square_centres(squares: list[SquareCrop], device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2) square centres and (B,) sides in pixels, float32 on ``device`` (None: cpu); centres in edge
    convention, like the image centre they are compared with (their difference is what matters)."""
    center = torch.tensor([[sq.x0 + sq.side / 2.0, sq.y0 + sq.side / 2.0] for sq in squares], device=device).reshape(-1, 2)
    return center, torch.tensor([float(sq.side) for sq in squares], device=device)


@torch.no_grad()
def body_geometry(
    body: BodyModel, rotmats: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, squares: list[SquareCrop], input_size: int,
    width: int, height: int,
) -> BodyGeometry:  # fmt: skip
    """Pose the body for (B, 24, 3, 3) ``rotmats``, (B, 10) ``betas`` and (B, 3) crop cameras of
    people cropped by ``squares`` (network input ``input_size``) from a ``width`` x ``height`` image.
    ``body`` and the tensors share one device; the results come to the host together."""
    dev = cam.device
    posed = body(rotmats[:, 1:], rotmats[:, 0], betas)
    s = input_size
    # weak perspective in [-1, 1] crop units -> crop pixels (edges at -0.5 and S - 0.5) -> image pixels
    uv = (weak_perspective_project(posed.joints, cam) + 1.0) * s / 2.0 - 0.5
    focal = focal_for(width, height)
    center, side = square_centres(squares, dev)
    n = len(squares)
    size = torch.tensor([[float(width), float(height)]], device=dev).expand(n, 2)
    trans = cam_crop_to_full(cam, center, side, size, torch.full((n,), focal, device=dev))
    sx, sy = cam[:, 0] * side / width, cam[:, 0] * side / height
    tx = (center[:, 0] - width / 2.0) / (width / 2.0) / sx + cam[:, 1]
    ty = (center[:, 1] - height / 2.0) / (height / 2.0) / sy + cam[:, 2]
    pose = rotmat_to_axis_angle(rotmats).reshape(-1, 72)
    uv, pose, joints, vertices, trans, orig_cam = host(uv, pose, posed.joints, posed.vertices, trans, torch.stack([sx, sy, tx, ty], 1))
    joints2d = np.stack([apply_affine(sq.crop_to_image(s), p) for sq, p in zip(squares, uv, strict=True)]) if squares else uv
    return BodyGeometry(
        pose=pose, joints3d=joints, joints2d=joints2d.astype(np.float32), vertices=vertices, trans=trans, orig_cam=orig_cam, focal_px=focal
    )
