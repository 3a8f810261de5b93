"""Plausible SMPL poses without motion-capture data: anatomical sampling and parametric motions.

All poses are (24, 3) axis-angle in SMPL's joint order with the root (index 0) in the *world*
frame (Y up, the body facing +Z at zero root rotation). Joint conventions of the SMPL tree at
zero pose (T-pose): hips/knees/ankles flex about x (hip flexion is negative x, knee flexion is
positive x); arms point along +-x, so lowering the left arm is a rotation about -z and the right
about +z; elbows bend about -y (left) / +y (right). Rotations are composed as matrices (``compose``)
so that "arm down, then swing forward" means what it says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lrpose.errors import InputError
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 1, 2, 3, 4, 5, 6, 7, 8, 9
NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 12, 13, 14, 15, 16, 17, 18, 19, 20, 21
ARM_DOWN = 1.25  # radians from the T-pose to arms beside the body


def compose(*aas: np.ndarray) -> np.ndarray:
    """Axis-angle of the rotation ``R(aa_0) @ R(aa_1) @ ...`` (apply the last one first)."""
    r = torch.eye(3, dtype=torch.float64)
    for aa in aas:
        r = r @ axis_angle_to_rotmat(torch.as_tensor(aa, dtype=torch.float64))
    return rotmat_to_axis_angle(r).numpy()


def _arm(side: float, raise_: float, swing: float, twist: float = 0.0) -> np.ndarray:
    """Shoulder rotation: lower the arm from the T-pose by ``ARM_DOWN - raise_``, then swing it
    forward by ``swing`` (radians, about the parent's x axis) and twist about the arm."""
    down = np.array([0.0, 0.0, -side * (ARM_DOWN - raise_)])
    return compose(np.array([-swing, 0.0, 0.0]), down, np.array([twist * side, 0.0, 0.0]))


def sample_static_pose(rng: np.random.Generator) -> np.ndarray:
    """(24, 3) a random standing/gesturing pose within anatomical ranges, limbs correlated."""
    p = np.zeros((24, 3))
    lean = rng.normal(0.0, 0.08, 3)
    for j, share in ((SPINE1, 0.4), (SPINE2, 0.3), (SPINE3, 0.3)):
        p[j] = lean * share + rng.normal(0.0, 0.03, 3)
    p[NECK] = rng.normal(0.0, [0.1, 0.15, 0.05])
    p[HEAD] = rng.normal(0.0, [0.12, 0.25, 0.08])
    stance = rng.uniform(0.0, 0.25)  # legs apart
    stride = rng.normal(0.0, 0.25)  # one leg forward, the other back (anti-correlated)
    for side, hip, knee, ankle in ((1.0, L_HIP, L_KNEE, L_ANKLE), (-1.0, R_HIP, R_KNEE, R_ANKLE)):
        flex = np.clip(side * stride + rng.normal(0.0, 0.1), -1.0, 0.4)
        p[hip] = [flex, rng.normal(0.0, 0.1), side * stance * 0.5 + rng.normal(0.0, 0.04)]
        p[knee, 0] = np.clip(max(0.0, -flex) * 0.8 + abs(rng.normal(0.0, 0.25)), 0.0, 2.0)
        p[ankle, 0] = rng.normal(0.0, 0.12)
    for side, collar, shoulder, elbow, wrist in (
        (1.0, L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST),
        (-1.0, R_COLLAR, R_SHOULDER, R_ELBOW, R_WRIST),
    ):
        gesture = rng.random() < 0.15
        raise_ = rng.uniform(0.6, 2.6) if gesture else abs(rng.normal(0.0, 0.25))
        p[collar] = [0.0, 0.0, -side * rng.uniform(0.0, 0.15) * (raise_ > 1.2)]
        p[shoulder] = _arm(side, raise_, rng.normal(0.0, 0.5 if gesture else 0.25), rng.normal(0.0, 0.3))
        p[elbow, 1] = -side * np.clip(abs(rng.normal(0.2, 0.5 if gesture else 0.3)), 0.0, 2.3)
        p[wrist] = rng.normal(0.0, 0.15, 3)
    return p


@dataclass(frozen=True)
class Motion:
    """Parameters of one person's motion over a clip."""

    kind: str
    """'walk', 'run', 'stand', 'turn' or 'wave'."""
    speed_mps: float
    """Ground speed along the heading (0 for stand/wave)."""
    cadence_hz: float
    """Gait cycles (two steps) per second."""
    stride: float
    """Hip flexion amplitude (radians)."""
    arm_swing: float
    """Shoulder swing amplitude (radians)."""
    phase: float
    turn_rate: float
    """Heading change in radians per second."""


def sample_motion(rng: np.random.Generator, kind: str | None = None) -> Motion:
    """Random motion parameters; ``kind`` None picks walk 55 %, run 15 %, stand 10 %, turn 10 %, wave 10 %."""
    kind = kind or str(rng.choice(["walk", "run", "stand", "turn", "wave"], p=[0.55, 0.15, 0.1, 0.1, 0.1]))
    if kind == "run":
        return Motion(
            kind,
            rng.uniform(2.5, 4.0),
            rng.uniform(1.3, 1.6),
            rng.uniform(0.6, 0.8),
            rng.uniform(0.6, 0.9),
            rng.uniform(0, 2 * math.pi),
            0.0,
        )
    if kind in ("walk", "turn"):
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8) if kind == "turn" else 0.0
        return Motion(
            kind,
            rng.uniform(1.0, 1.6),
            rng.uniform(0.8, 1.0),
            rng.uniform(0.3, 0.45),
            rng.uniform(0.2, 0.45),
            rng.uniform(0, 2 * math.pi),
            turn,
        )
    return Motion(kind, 0.0, rng.uniform(0.3, 0.6), 0.0, 0.0, rng.uniform(0, 2 * math.pi), 0.0)


def motion_pose(m: Motion, t: float, base: np.ndarray | None = None) -> np.ndarray:
    """(24, 3) body pose (root excluded: zero) of motion ``m`` at time ``t`` seconds.

    Gaits are phase-coupled: left hip flexes while the right extends, knees flex most in swing,
    arms swing opposite to the legs. ``base`` (24, 3) adds a person's own posture.
    """
    p = np.zeros((24, 3)) if base is None else base.copy()
    ph = 2 * math.pi * m.cadence_hz * t + m.phase
    if m.kind in ("walk", "run", "turn"):
        knee_base = 0.15 if m.kind != "run" else 0.5
        for side, hip, knee, ankle, shoulder, elbow in (
            (1.0, L_HIP, L_KNEE, L_ANKLE, L_SHOULDER, L_ELBOW),
            (-1.0, R_HIP, R_KNEE, R_ANKLE, R_SHOULDER, R_ELBOW),
        ):
            s = math.sin(ph if side > 0 else ph + math.pi)
            c = math.cos(ph if side > 0 else ph + math.pi)
            p[hip, 0] += -m.stride * s
            p[knee, 0] += knee_base + (1.1 if m.kind == "run" else 0.55) * max(0.0, c) * (1 + 0.5 * max(0.0, s))
            p[ankle, 0] += 0.2 * math.sin(ph + (0.5 if side > 0 else 0.5 + math.pi))
            p[shoulder] = _arm(side, 0.05, m.arm_swing * s * -1.0)
            p[elbow, 1] = -side * ((1.4 if m.kind == "run" else 0.25) + 0.15 * max(0.0, -s))
        p[SPINE1, 1] = 0.06 * math.sin(ph)  # counter-rotation of the trunk
        p[SPINE1, 0] = 0.15 if m.kind == "run" else 0.03
    elif m.kind == "wave":
        p[L_SHOULDER] = _arm(1.0, 0.05, 0.0)
        p[R_SHOULDER] = _arm(-1.0, 2.3, 0.3)
        p[R_ELBOW, 1] = 0.9 + 0.5 * math.sin(2 * math.pi * 1.5 * t + m.phase)
    else:  # stand: small postural sway
        p[L_SHOULDER] = _arm(1.0, 0.05, 0.05 * math.sin(ph))
        p[R_SHOULDER] = _arm(-1.0, 0.05, 0.05 * math.sin(ph + 1))
        p[SPINE1, 2] = 0.03 * math.sin(ph)
        p[HEAD, 1] = 0.2 * math.sin(0.5 * ph)
    return p


def load_pose_file(path: str) -> np.ndarray:
    """(N, 72) axis-angle poses from an ``.npz`` (key 'poses' or 'pose'), e.g. AMASS-style arrays."""
    try:
        with np.load(path, allow_pickle=False) as z:
            key = "poses" if "poses" in z.files else "pose" if "pose" in z.files else None
            poses = np.asarray(z[key], np.float64) if key else None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read pose file {path}: {e}") from None
    if poses is None:
        raise InputError(f"{path}: no 'poses' or 'pose' array")
    if poses.ndim != 2 or poses.shape[1] < 72 or not np.isfinite(poses).all():
        raise InputError(f"{path}: poses must be a finite (N, >=72) array, got {poses.shape}")
    return poses[:, :72]


ACTIONS = ("sit", "squat", "bend", "reach", "kick", "run", "turn")


def sample_action_pose(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """(24, 3) a pose beyond walking (root zero): sitting, squatting, bending over, reaching up, kicking,
    running (a random phase of the run gait) or turning (a walking pose with the trunk and head twisted)."""
    kind = kind or str(rng.choice(ACTIONS))
    if kind == "run":
        return motion_pose(sample_motion(rng, "run"), float(rng.uniform(0, 2)))
    if kind == "turn":
        p = motion_pose(sample_motion(rng, "walk"), float(rng.uniform(0, 2)))
        twist = rng.choice([-1.0, 1.0]) * rng.uniform(0.25, 0.6)
        for j in (SPINE1, SPINE2, SPINE3):
            p[j, 1] += twist / 3
        p[NECK, 1] += twist * 0.3
        p[HEAD, 1] += twist * rng.uniform(0.5, 1.5)
        return p
    p = sample_static_pose(rng)
    if kind in ("sit", "squat"):
        hip, knee = (rng.uniform(1.2, 1.7), rng.uniform(1.2, 1.8)) if kind == "sit" else (rng.uniform(1.6, 2.1), rng.uniform(1.9, 2.4))
        for side, h, k, a in ((1.0, L_HIP, L_KNEE, L_ANKLE), (-1.0, R_HIP, R_KNEE, R_ANKLE)):
            p[h] = [-hip + rng.normal(0, 0.1), rng.normal(0, 0.1), side * rng.uniform(0.0, 0.35)]
            p[k, 0] = knee + rng.normal(0, 0.1)
            p[a, 0] = -0.3 * (kind == "squat") + rng.normal(0, 0.1)
        p[SPINE1, 0] += rng.uniform(0.0, 0.5) * (kind == "squat")
    elif kind == "bend":
        for j in (SPINE1, SPINE2, SPINE3):
            p[j, 0] = rng.uniform(0.15, 0.45)
        for h, k in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
            p[h, 0] = -rng.uniform(0.2, 0.9)
            p[k, 0] = rng.uniform(0.0, 0.6)
        for side, shoulder in ((1.0, L_SHOULDER), (-1.0, R_SHOULDER)):
            p[shoulder] = _arm(side, rng.uniform(0.0, 0.4), rng.uniform(0.3, 1.2), rng.normal(0, 0.3))
    elif kind == "reach":
        side, shoulder, elbow = (1.0, L_SHOULDER, L_ELBOW) if rng.random() < 0.5 else (-1.0, R_SHOULDER, R_ELBOW)
        p[shoulder] = _arm(side, rng.uniform(1.6, 2.9), rng.uniform(0.0, 1.2), rng.normal(0, 0.3))
        p[elbow, 1] = -side * rng.uniform(0.0, 0.5)
        p[SPINE2, 2] = -side * rng.uniform(0.0, 0.2)
    else:  # kick: one leg swung forward, nearly straight; lean back, arms out for balance
        side, hip, knee = (1.0, L_HIP, L_KNEE) if rng.random() < 0.5 else (-1.0, R_HIP, R_KNEE)
        p[hip] = [-rng.uniform(0.7, 1.6), rng.normal(0, 0.15), side * rng.uniform(0.0, 0.3)]
        p[knee, 0] = rng.uniform(0.0, 0.7)
        p[SPINE1, 0] = -rng.uniform(0.0, 0.3)
        for s, shoulder in ((1.0, L_SHOULDER), (-1.0, R_SHOULDER)):
            p[shoulder] = _arm(s, rng.uniform(0.4, 1.2), rng.normal(0, 0.4))
    return p
