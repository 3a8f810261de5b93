"""Pure torch geometry, batched over any leading dimensions unless stated.

Conventions
- Rotation matrices act on column vectors: ``x' = R @ x``.
- rot6d follows SPIN's layout: the 6 numbers are ``R[:, :2]`` flattened row-major, i.e.
  ``x.view(-1, 3, 2)`` gives the first two *columns* (so official SPIN / RSC-Net checkpoints
  decode the same way).
- Weak-perspective crop camera ``[s, tx, ty]`` (HMR/SPIN): ``x_norm = s * (X_xy + [tx, ty])``
  with ``x_norm`` in [-1, 1] over the crop.
- Perspective translation from a crop camera (SPIN): ``[tx, ty, 2 f / (S s)]`` with focal
  length f in pixels (5000 in SPIN) and crop side S (224).
No renderer or I/O imports here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-8
SPIN_FOCAL_PX = 5000.0
"""SPIN's focal length in pixels for a crop of ``SPIN_CROP_PX``: the one focal-length fact of lrpose."""
SPIN_CROP_PX = 224.0


def focal_for(width: int, height: int) -> float:
    """Full-image focal length in pixels: SPIN's 5000 px at 224 px, scaled to the image's longer side."""
    return SPIN_FOCAL_PX / SPIN_CROP_PX * max(width, height)


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) SPIN-layout 6D rotation -> (..., 3, 3) rotation matrix (Gram-Schmidt)."""
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1, eps=_EPS)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=_EPS)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 6) SPIN-layout 6D rotation (exact inverse)."""
    return r[..., :, :2].reshape(*r.shape[:-2], 6)


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix."""
    z = torch.zeros_like(v[..., 0])
    x, y, w = v.unbind(-1)
    return torch.stack([z, -w, y, w, z, -x, -y, x, z], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle (radians, axis * angle) -> (..., 3, 3) by Rodrigues' formula.

    Stable at zero angle (Taylor series); differentiable everywhere.
    """
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    k = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def rotmat_to_quaternion(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit quaternion ``[w, x, y, z]`` with w >= 0.

    Chooses, per matrix, the best-conditioned of the four standard formulas.
    """
    m = r
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    t = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    cands = torch.stack(
        [
            torch.stack([t[..., 0], d21, d02, d10], -1),
            torch.stack([d21, t[..., 1], s10, s02], -1),
            torch.stack([d02, s10, t[..., 2], s21], -1),
            torch.stack([d10, s02, s21, t[..., 3]], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    best = t.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / (2.0 * torch.gather(t, -1, best[..., None]).clamp_min(_EPS).sqrt())
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion ``[w, x, y, z]`` -> (..., 3) axis-angle with angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    scale = torch.where(small, 2.0 / q[..., :1].clamp_min(_EPS), 2.0 * half / torch.where(small, 1.0, sin_half))
    return xyz * scale


def rotmat_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle (angle in [0, pi])."""
    return quaternion_to_axis_angle(rotmat_to_quaternion(r))


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project (B, N, 3) points with (B, 3) crop cameras ``[s, tx, ty]`` -> (B, N, 2) in [-1, 1] crop units."""
    return cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])


def perspective_project(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal_px: torch.Tensor | float,
    center_px: torch.Tensor,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection to pixels.

    points (B, N, 3) metres in the body frame; translation (B, 3) metres; focal_px scalar or (B,);
    center_px (B, 2) principal point in pixels; rotation (B, 3, 3) or None (identity).
    Returns (B, N, 2) pixel coordinates ``f * X/Z + c``.
    """
    if rotation is not None:
        points = points @ rotation.transpose(-1, -2)
    p = points + translation[:, None, :]
    f = torch.as_tensor(focal_px, dtype=p.dtype, device=p.device).reshape(-1, 1, 1)
    return f * p[..., :2] / p[..., 2:].clamp_min(_EPS) + center_px[:, None, :]


def crop_cam_to_translation(cam: torch.Tensor, focal_px: float = SPIN_FOCAL_PX, crop_size: float = SPIN_CROP_PX) -> torch.Tensor:
    """(B, 3) weak-perspective ``[s, tx, ty]`` -> (B, 3) perspective translation in the crop (SPIN)."""
    tz = 2.0 * focal_px / (crop_size * cam[:, 0] + 1e-9)
    return torch.stack([cam[:, 1], cam[:, 2], tz], dim=-1)


def cam_crop_to_full(
    crop_cam: torch.Tensor, box_center: torch.Tensor, box_size: torch.Tensor, image_size: torch.Tensor, focal_px: torch.Tensor
) -> torch.Tensor:
    """Full-frame camera translation from a crop camera (CLIFF / 4D-Humans convention).

    crop_cam (B, 3) ``[s, tx, ty]``; box_center (B, 2) pixels; box_size (B,) side of the square
    crop in pixels; image_size (B, 2) ``[width, height]``; focal_px (B,) full-image focal length.
    Returns (B, 3) translation in metres for a camera at the image centre, such that
    ``perspective_project(X, t, focal_px, image_size / 2)`` lands on the person in the image.
    """
    bs = box_size * crop_cam[:, 0] + 1e-9
    tz = 2.0 * focal_px / bs
    tx = 2.0 * (box_center[:, 0] - image_size[:, 0] / 2.0) / bs + crop_cam[:, 1]
    ty = 2.0 * (box_center[:, 1] - image_size[:, 1] / 2.0) / bs + crop_cam[:, 2]
    return torch.stack([tx, ty, tz], dim=-1)


def cam_full_to_crop(
    translation: torch.Tensor, box_center: torch.Tensor, box_size: torch.Tensor, image_size: torch.Tensor, focal_px: torch.Tensor
) -> torch.Tensor:
    """The inverse of ``cam_crop_to_full``: (B, 3) full-frame translation -> (B, 3) crop camera ``[s, tx, ty]``."""
    tz = translation[:, 2].clamp_min(1e-6)
    bs = 2.0 * focal_px / tz
    s = bs / box_size
    tx = translation[:, 0] - 2.0 * (box_center[:, 0] - image_size[:, 0] / 2.0) / bs
    ty = translation[:, 1] - 2.0 * (box_center[:, 1] - image_size[:, 1] / 2.0) / bs
    return torch.stack([s, tx, ty], dim=-1)


def similarity_procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Align (B, N, 3) ``source`` to ``target`` by the best similarity transform (scale, rotation,
    translation; no reflection) in the least-squares sense; returns the aligned source (B, N, 3).
    """
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    var_s = (xs * xs).sum((1, 2))
    k = xs.transpose(1, 2) @ xt  # (B, 3, 3)
    u, _, vh = torch.linalg.svd(k)
    d = torch.sign(torch.linalg.det(u @ vh))
    z = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rot = (u @ z @ vh).transpose(1, 2)  # rotation applied as rot @ x
    scale = (rot * k.transpose(1, 2)).sum((1, 2)) / var_s.clamp_min(_EPS)
    return scale[:, None, None] * xs @ rot.transpose(1, 2) + mu_t
