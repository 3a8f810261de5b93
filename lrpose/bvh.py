"""BVH motion capture file of one track (Biovision hierarchy, the format of CMU mocap and Blender's
BVH importer).

Skeleton: the body model's 24 joints, offsets from the track's rest shape, in metres, y up, facing
+z (the export world frame of ``lrpose.animation``); each end joint (head, hands, feet) gets an
``End Site`` 10 cm along its parent bone. Channels: the root ``Xposition Yposition Zposition
Zrotation Xrotation Yrotation``, every other joint ``Zrotation Xrotation Yrotation``, degrees; a
joint's rotation matrix is ``Rz @ Rx @ Ry`` (the channel order, applied to the child's offset).
One frame per video frame from the track's first to its last; frames inside a gap (no result)
repeat the last result (BVH has no notion of "absent"; the glTF export hides the body instead).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrpose.animation import TrackAnimation
from lrpose.files import atomic_write_bytes

ORDER = "ZXY"
"""Euler order of every rotation channel: R = Rz @ Rx @ Ry."""


def euler_zxy(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) angles (z, x, y) in degrees with ``R = Rz(z) @ Rx(x) @ Ry(y)``."""
    x = np.arcsin(np.clip(r[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-r[..., 0, 1], r[..., 1, 1])
    y = np.arctan2(-r[..., 2, 0], r[..., 2, 2])
    return np.degrees(np.stack([z, x, y], -1))


def filled_frames(anim: TrackAnimation) -> tuple[np.ndarray, np.ndarray]:
    """Index into the track's results for every video frame from its first to its last (a gap repeats
    the last result) and those frame numbers."""
    frames = np.arange(anim.frame_ids[0], anim.frame_ids[-1] + 1)
    return np.searchsorted(anim.frame_ids, frames, side="right") - 1, frames


def write_bvh(path: Path, anim: TrackAnimation) -> None:
    """Write one track as a BVH file (atomically)."""
    children: dict[int, list[int]] = {j: [] for j in range(24)}
    for j, p in enumerate(anim.parents):
        if p >= 0:
            children[p].append(j)
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        p = anim.parents[j]
        offset = anim.rest_joints[j] - (anim.rest_joints[p] if p >= 0 else anim.rest_joints[j])
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {anim.names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        channels = "Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {channels}" if p < 0 else f"{pad}  CHANNELS 3 {channels}")
        for c in children[j]:
            joint(c, depth + 1)
        if not children[j]:
            bone = anim.rest_joints[j] - anim.rest_joints[p]
            tip = 0.1 * bone / max(float(np.linalg.norm(bone)), 1e-9)
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    rows, frames = filled_frames(anim)
    order = _depth_first(children)
    angles = euler_zxy(anim.local_rotations[rows][:, order])  # (F, 24, 3)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {1.0 / anim.fps:.6f}"]
    for pos, ang in zip(anim.root_positions[rows], angles, strict=True):
        lines.append(" ".join(f"{v:.6f}" for v in (*pos, *ang.reshape(-1))))
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


def _depth_first(children: dict[int, list[int]]) -> list[int]:
    """Joint indices in the order the hierarchy lists them (the order of the motion columns)."""
    out: list[int] = []

    def visit(j: int) -> None:
        out.append(j)
        for c in children[j]:
            visit(c)

    visit(0)
    return out
