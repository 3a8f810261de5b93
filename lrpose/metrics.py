"""Evaluation metrics as in SPIN / VIBE: functions, and accumulators that use the same functions.

Inputs are in metres, outputs in millimetres. Joints are the 14 LSP joints; callers subtract a
root joint before MPJPE (``PELVIS_MODES``): ``"h36m"``, the H36M-17 regressor's joint 0 (what the
official SPIN and RSC-Net ``eval.py`` subtract from prediction and ground truth; the default of
``lrpose eval``), or ``"hips"``, the midpoint of the two LSP hips (``hip_align``; what SPIN's
training losses and VIBE's evaluation use). PA-MPJPE does not depend on the root.
"""

from __future__ import annotations

import torch

from lrpose.geometry import similarity_procrustes

LSP_HIPS = (2, 3)  # right hip, left hip in LSP order
PELVIS_MODES = ("h36m", "hips")
"""Root joint subtracted before MPJPE: H36M joint 0 (official evaluation) or the LSP hips' midpoint."""


def hip_midpoint(joints: torch.Tensor) -> torch.Tensor:
    """(B, 3) midpoint of the two hips of (B, 14, 3) LSP joints."""
    return joints[:, list(LSP_HIPS)].mean(1)


def align_at(joints: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) joints minus a (B, 3) root joint."""
    return joints - root[:, None]


def hip_align(joints: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) LSP joints minus the midpoint of the hips (the ``"hips"`` pelvis; VIBE's evaluation)."""
    return align_at(joints, hip_midpoint(joints))


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B,) mean per-joint position error in mm of (B, J, 3) joints in metres (no alignment here)."""
    return (pred - gt).norm(dim=-1).mean(-1) * 1000.0


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B,) MPJPE in mm after aligning ``pred`` to ``gt`` with a similarity Procrustes per sample."""
    return mpjpe(similarity_procrustes(pred, gt), gt)


def pve(pred_vertices: torch.Tensor, gt_vertices: torch.Tensor) -> torch.Tensor:
    """(B,) per-vertex error in mm of (B, V, 3) meshes in metres."""
    return mpjpe(pred_vertices, gt_vertices)


def accel(joints: torch.Tensor) -> torch.Tensor:
    """(T-2,) mean norm of the second difference of (T, J, 3) joints, mm/frame^2."""
    a = joints[:-2] - 2 * joints[1:-1] + joints[2:]
    return a.norm(dim=-1).mean(-1) * 1000.0


def accel_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(T-2,) mean norm of the difference of second differences, mm/frame^2 (VIBE)."""
    ap = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    ag = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    return (ap - ag).norm(dim=-1).mean(-1) * 1000.0


class MeanMetric:
    """Accumulates per-sample values of one metric function and returns their mean."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.total = 0.0
        self.count = 0

    def update(self, *args: torch.Tensor) -> torch.Tensor:
        values = self.fn(*args).detach()
        self.total += float(values.sum())
        self.count += values.numel()
        return values

    def compute(self) -> float:
        return self.total / self.count if self.count else float("nan")
