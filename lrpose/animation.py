"""A track's result as a skeletal animation, the common ground of the glTF and BVH exports.

World frame of every export: y up, metres, right-handed, the camera at the origin looking down -z
(glTF's convention): lrpose's camera frame (x right, y down, z forward) turned 180 degrees about x,
``world = UPRIGHT @ camera`` (as ``results.upright_vertices``). A person facing the camera faces +z.

The skeleton is the body model's 24 joints in its rest pose (T-pose) for the track's mean betas
(a glTF/BVH skeleton has one shape; per-frame betas vary by a few mm). Joint ``j``'s rotation is
relative to its parent (``rotmats`` of the track file, which are parent-relative already); the
root's is ``UPRIGHT @ R_root``; the root joint's world position is ``UPRIGHT @ (J_0 + trans)``
(the body model rotates about ``J_0`` and the track's ``trans`` is added after posing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrpose.body import SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModel
from lrpose.errors import InputError
from lrpose.results import read_result

UPRIGHT = np.diag([1.0, -1.0, -1.0])
"""lrpose camera frame -> export world frame (y up, z towards the camera)."""


@dataclass(frozen=True)
class TrackAnimation:
    """One track as rest skeleton + per-frame joint rotations and root positions (world frame)."""

    track_id: int
    frame_ids: np.ndarray
    """(T,) video frame indices the track has results for (increasing; may have gaps)."""
    times: np.ndarray
    """(T,) seconds from the video's start."""
    fps: float
    betas: np.ndarray
    """(10,) the track's mean shape."""
    rest_joints: np.ndarray
    """(24, 3) rest-pose joint positions, metres, body frame (y up, facing +z)."""
    local_rotations: np.ndarray
    """(T, 24, 3, 3) joint rotations relative to the parent; the root's in the world frame."""
    root_positions: np.ndarray
    """(T, 3) world position of the root joint, metres."""
    camera: tuple[float, int, int] | None = None
    """(focal px, width, height) of the video the track comes from, if known."""
    names: tuple[str, ...] = SMPL_JOINT_NAMES
    parents: tuple[int, ...] = SMPL_PARENTS

    def world_joints(self) -> np.ndarray:
        """(T, 24, 3) joint positions in the world frame by forward kinematics (what a 3D tool shows)."""
        t = len(self.frame_ids)
        rot = np.zeros((t, 24, 3, 3))
        pos = np.zeros((t, 24, 3))
        for j, p in enumerate(self.parents):
            if p < 0:
                rot[:, j], pos[:, j] = self.local_rotations[:, j], self.root_positions
            else:
                offset = self.rest_joints[j] - self.rest_joints[p]
                rot[:, j] = rot[:, p] @ self.local_rotations[:, j]
                pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", rot[:, p], offset)
        return pos


def track_animation(track: dict[str, np.ndarray], body: BodyModel) -> TrackAnimation:
    """The animation of one track file's arrays (``results.read_result``) with ``body``."""
    for key in ("rotmats", "betas", "trans", "frame_ids"):
        if key not in track:
            raise InputError(f"track file has no '{key}' (written by lrpose before 0.2?): run lrpose video again")
    betas = track["betas"].astype(np.float64).mean(0)
    with torch.no_grad():
        layer = body.layer
        from smplx.lbs import blend_shapes, vertices2joints

        shaped = layer.v_template + blend_shapes(torch.from_numpy(betas).float()[None], layer.shapedirs)
        rest = vertices2joints(layer.J_regressor, shaped)[0].double().numpy()
    rot = track["rotmats"].astype(np.float64).copy()
    rot[:, 0] = UPRIGHT @ rot[:, 0]
    root = (rest[0] + track["trans"].astype(np.float64)) @ UPRIGHT.T
    fps = float(track["fps"]) if "fps" in track and float(track["fps"]) > 0 else 25.0
    times = track["time_s"].astype(np.float64) if "time_s" in track else track["frame_ids"] / fps
    camera = None
    if "focal_px" in track and "image_size" in track:
        camera = (float(track["focal_px"]), int(track["image_size"][0]), int(track["image_size"][1]))
    return TrackAnimation(int(track.get("track_id", 0)), track["frame_ids"].astype(np.int64), times, fps, betas, rest, rot, root, camera)


def read_tracks(folder: Path, body: BodyModel) -> list[TrackAnimation]:
    """Every track of a ``lrpose video`` results folder (``<folder>/tracks/*.npz``), made with ``body``."""
    files = sorted(Path(folder, "tracks").glob("*.npz"))
    if not files:
        raise InputError(f"{folder} holds no tracks/*.npz: give the folder lrpose video wrote for one source")
    out = []
    for f in files:
        try:
            track = read_result(f)
        except (OSError, ValueError) as e:
            raise InputError(f"{f} is not a readable track file ({e})") from None
        made_with = str(track.get("body_model", body.body_id))
        if made_with != body.body_id:
            raise InputError(f"{f} was made with body {made_with}, not {body.body_id}: pass the same --smpl/--standin as the run")
        out.append(track_animation(track, body))
    return out
