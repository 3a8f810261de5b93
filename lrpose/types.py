"""The data that flows between pipeline stages (frozen dataclasses, pytorch3d-``Fragments`` style).

Conventions: images are RGB; boxes are ``[x1, y1, x2, y2]`` in pixels of the full frame;
rotations inside the library are rotation matrices, axis-angle only in files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrpose.crops import SquareCrop
from lrpose.resolution import below_minimum


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
    keypoints: np.ndarray | None = None
    """(N, 17, 3) float32 COCO-17 keypoints ``[x, y, confidence]`` (full-frame pixels, pixel centres at
    integers), when the detector gives them (a pose model, or keypoints in ``--boxes`` JSON); else None."""


@dataclass(frozen=True)
class TrackedBox:
    """A detection assigned to a track."""

    track_id: int
    frame_index: int
    box_xyxy: np.ndarray
    """(4,) float32, pixels."""
    score: float
    observed: bool = True
    """False while the person is not detected and the tracker predicts the box (a bridged gap)."""
    keypoints: np.ndarray | None = None
    """(17, 3) COCO-17 ``[x, y, confidence]`` of the detection matched this frame (None: none)."""


@dataclass(frozen=True)
class PoseEstimate:
    """One person in one frame (numpy; ``lrpose.results`` writes it). Rotations are in the camera
    frame (x right, y down, z forward); lengths in metres; 2D in full-image pixels. The image
    command returns the same record (track 0, frame 0)."""

    track_id: int
    frame_index: int
    box_xyxy: np.ndarray
    """(4,) float32 tracked box."""
    observed: bool
    """False on frames the tracker bridged (person not detected, box predicted)."""
    crop: SquareCrop
    """The square fed to the network (``box_xyxy`` padded ``--box-scale``, default 1.2x, or the whole image for ``lrpose image``)."""
    range_index: int
    """Resolution range used (0..4)."""
    pose: np.ndarray
    """(72,) float32 axis-angle, root first."""
    rotmats: np.ndarray
    """(24, 3, 3) float32 joint rotations (the same pose as ``pose``)."""
    betas: np.ndarray
    """(10,) float32."""
    pred_cam: np.ndarray
    """(3,) weak-perspective crop camera ``[s, tx, ty]``."""
    orig_cam: np.ndarray
    """(4,) VIBE's full-image weak-perspective camera ``[sx, sy, tx, ty]``."""
    trans: np.ndarray
    """(3,) full-frame camera translation (metres, focal ``focal_px``, principal point at the image centre)."""
    joints3d: np.ndarray
    """(24, 3) SMPL joints, metres, before translation."""
    joints2d: np.ndarray
    """(24, 2) image pixels."""
    vertices: np.ndarray
    """(V, 3) float32 mesh, metres, before translation."""
    features: np.ndarray
    """(D,) pooled backbone feature phi (input of the temporal module)."""
    keypoints2d: np.ndarray = field(default_factory=lambda: np.full((17, 3), np.nan, np.float32))
    """(17, 3) float32 detector COCO-17 keypoints ``[x, y, confidence]`` in image pixels; NaN where absent."""
    refined: bool = False
    """True when the body was fitted to ``keypoints2d`` (``lrpose.refine``)."""
    kp_residual: np.ndarray = field(default_factory=lambda: np.full(2, np.nan, np.float32))
    """(2,) mean pixel distance of the body's COCO keypoints to the confident detector keypoints,
    before and after refinement (NaN without keypoints)."""

    @property
    def native_size(self) -> int:
        """Side of the square crop in source pixels (it picks the resolution range)."""
        return self.crop.side

    @property
    def below_minimum(self) -> bool:
        """The crop is smaller than the 24 px the model was trained for."""
        return below_minimum(self.crop.side)

    @property
    def finite(self) -> bool:
        """Every estimated value is finite (``keypoints2d`` / ``kp_residual`` are NaN by design when
        absent and not checked). A non-finite estimate is never written."""
        arrays = (
            self.pose,
            self.rotmats,
            self.betas,
            self.pred_cam,
            self.orig_cam,
            self.trans,
            self.joints3d,
            self.joints2d,
            self.vertices,
        )
        return all(bool(np.isfinite(a).all()) for a in arrays)


@dataclass(frozen=True)
class FrameResult:
    """Everything estimated for one frame."""

    frame: Frame
    people: list[PoseEstimate] = field(default_factory=list)
    detected: bool = True
    """False on frames the detector skipped (``--det-stride``)."""
