"""The data that flows between pipeline stages (frozen dataclasses, pytorch3d-``Fragments`` style).

Conventions: images are RGB; boxes are ``[x1, y1, x2, y2]`` in pixels of the full frame;
rotations inside the library are rotation matrices, axis-angle only in files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    index: int
    """0-based frame number in the source."""
    image: np.ndarray
    """(H, W, 3) uint8, RGB."""
    time_s: float
    """Presentation time in seconds (from container timestamps; VFR-safe)."""


@dataclass(frozen=True)
class Detections:
    """Person detections in one frame."""

    boxes_xyxy: np.ndarray
    """(N, 4) float32, pixels, full frame."""
    scores: np.ndarray
    """(N,) float32 in [0, 1]."""


@dataclass(frozen=True)
class TrackedBox:
    """A detection assigned to a track."""

    track_id: int
    frame_index: int
    box_xyxy: np.ndarray
    """(4,) float32, pixels."""
    score: float


@dataclass(frozen=True)
class Crop:
    """A square, network-ready crop of one person."""

    track_id: int
    frame_index: int
    pixels: torch.Tensor
    """(3, S, S) float32, ImageNet-normalised, bicubically resized to the network size S."""
    native_size: int
    """Side of the square crop in source pixels before resizing (selects the resolution range)."""
    range_index: int
    """Resolution range p in 0..4 (see ``lrpose.resolution``)."""
    crop_to_image: np.ndarray
    """(2, 3) float64 affine mapping crop pixel coords (in S x S) to full-image pixel coords."""


@dataclass(frozen=True)
class SMPLParams:
    """SMPL parameters as rotation matrices (the network's and body model's currency)."""

    global_orient: torch.Tensor
    """(B, 3, 3) root rotation."""
    body_pose: torch.Tensor
    """(B, 23, 3, 3) joint rotations relative to their parents, SMPL joint order 1..23."""
    betas: torch.Tensor
    """(B, 10) shape coefficients."""

    def to(self, *args, **kwargs) -> SMPLParams:
        """Move/cast every tensor (same arguments as ``torch.Tensor.to``)."""
        return SMPLParams(*(t.to(*args, **kwargs) for t in (self.global_orient, self.body_pose, self.betas)))

    def detach(self) -> SMPLParams:
        """Detached copy (no autograd history)."""
        return SMPLParams(self.global_orient.detach(), self.body_pose.detach(), self.betas.detach())


@dataclass(frozen=True)
class Camera:
    """Camera of one estimate (SPIN convention, see ``lrpose.geometry``)."""

    crop_cam: torch.Tensor
    """(B, 3) weak-perspective ``[s, tx, ty]`` in normalised crop coordinates ([-1, 1])."""
    translation: torch.Tensor
    """(B, 3) full-frame camera translation in metres (perspective, focal ``focal_px``)."""
    focal_px: float
    """Focal length in full-image pixels used for ``translation``."""


@dataclass(frozen=True)
class PoseEstimate:
    """One person in one frame."""

    track_id: int
    frame_index: int
    smpl: SMPLParams
    camera: Camera
    joints3d: torch.Tensor
    """(B, 24, 3) SMPL joints in metres, body frame (before camera translation)."""
    features: torch.Tensor
    """(B, D) pooled backbone feature phi (input to the temporal module)."""


@dataclass(frozen=True)
class FrameResult:
    """Everything estimated for one frame."""

    frame: Frame
    people: list[PoseEstimate] = field(default_factory=list)
