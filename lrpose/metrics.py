"""Evaluation metrics as in SPIN / VIBE: functions, and accumulators that use the same functions.

Inputs are in metres, outputs in millimetres. Joints are the 14 LSP joints; callers align
them at the pelvis (midpoint of the hips) before MPJPE, as SPIN's evaluation does.
"""

from __future__ import annotations

import torch

from lrpose.geometry import similarity_procrustes

LSP_HIPS = (2, 3)  # right hip, left hip in LSP order


def pelvis_align(joints: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) LSP joints minus the midpoint of the hips."""
    return joints - joints[:, list(LSP_HIPS)].mean(1, keepdim=True)


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
