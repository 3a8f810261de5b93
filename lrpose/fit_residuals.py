"""The keypoint fit's least-squares problem (``lrpose.refine``): parameters, weighted residuals and
their Jacobian.

Parameters per person, x = (delta 72, move 3[, shape 10]): axis-angle changes of the 24 joint
rotations (``R_j = R0_j @ exp(delta_j)``), the sideways shift in person heights and the log of the
depth change, and with ``fit_betas`` a shape change; every unknown is a small dimensionless number.
"""

from __future__ import annotations

import torch

from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from lrpose.keypoint_skin import KeypointSkinner, project

KNEES, ELBOWS, SPINE = (4, 5), (18, 19), (3, 6, 9)
LIMITED = (*KNEES, *ELBOWS, *SPINE)
"""The joints with limits, in the order ``limit_terms`` reads them."""
TORSO = (5, 6, 11, 12)
"""COCO shoulders and hips."""


def limit_terms(limited: torch.Tensor) -> torch.Tensor:
    """(B, 7, 3, 3) rotations of the ``LIMITED`` joints -> (B, 11) residuals that are zero inside the
    joint limits: knees and elbows bending the wrong way (knees also twisting), a spine joint bent
    more than 0.6 rad."""
    aa = rotmat_to_axis_angle(limited)  # (B, 7, 3): knees, elbows, spine
    knee = torch.cat([torch.relu(-aa[:, :2, 0]), 0.1**0.5 * aa[:, :2, 1:].flatten(1)], 1)
    elbow = torch.stack([torch.relu(aa[:, 2, 1]), torch.relu(-aa[:, 3, 1])], 1)
    spine = torch.relu(aa[:, 4:].norm(dim=-1) - 0.6)
    return torch.cat([knee, elbow, spine], 1)


def torso_relative(pts: torch.Tensor) -> torch.Tensor:
    """(B, 17, 3) keypoints relative to the mean of the shoulders and hips."""
    return pts - pts[:, list(TORSO)].mean(1, keepdim=True)


class FitProblem:
    """The residuals of N fits (the people, each start once) with their fixed inputs, (N, ...) tensors in
    one dtype: network rotations ``rot0``, start translations ``trans0``, keypoints ``kp`` (pixels),
    robust ``weights`` set per iteration, ``heights`` (px), prior weights ``w_prior``, temporal
    ``anchor`` (N, 17, 4) with ``has_anchor``; ``limits`` / ``smooth`` / ``shape_prior`` the weights."""

    def __init__(self, skin: KeypointSkinner, rot0, trans0, kp, heights, w_prior, anchor, has_anchor, focal_px: float, center,
                 limits: float, smooth: float, shape_prior: float | None) -> None:  # fmt: skip  # noqa: ANN001
        self.skin, self.rot0, self.trans0, self.kp, self.heights = skin, rot0, trans0, kp, heights
        self.w_prior, self.anchor, self.has_anchor, self.focal_px, self.center = w_prior, anchor, has_anchor, focal_px, center
        self.limits, self.smooth, self.shape_prior = limits, smooth, shape_prior
        self.span = trans0[:, 2] * heights / focal_px  # metres covered by the person's box height at its depth
        self.weights = torch.ones_like(kp[..., 0])
        self.nx = 75 + (10 if shape_prior is not None else 0)

    def unpack(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(M, nx) parameters of fits ``rows`` -> rotations (M, 24, 3, 3), translations (M, 3), shape change or None."""
        rot = self.rot0[rows] @ axis_angle_to_rotmat(x[:, :72].reshape(-1, 24, 3))
        return rot, self._trans(x[:, 72:75], rows), (x[:, 75:] if self.shape_prior is not None else None)

    def _trans(self, move: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        z = self.trans0[rows, 2] * move[:, 2].exp()
        return torch.cat([self.trans0[rows, :2] + move[:, :2] * self.span[rows, None], z[:, None]], 1)

    def residuals(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(M, R) weighted residuals of fits ``rows`` at parameters ``x`` (M, nx)."""
        rot, trans, shape = self.unpack(x, rows)
        return self._assemble(self.skin.select(rows)(rot, trans, shape), rot[:, list(LIMITED)], x, trans[:, 2], rows)

    def _assemble(self, pts: torch.Tensor, limited: torch.Tensor, x: torch.Tensor, depth: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The residuals from (M, 17, 3) keypoints, the limited joints' rotations, the parameters and depths."""
        r = (project(pts, self.focal_px, self.center[None]) - self.kp[rows, :, :2]) / self.heights[rows, None, None]
        parts = [
            (self.weights[rows, :, None] * r).flatten(1),
            self.w_prior[rows, None].sqrt() * x[:, :72],
            self.limits**0.5 * limit_terms(limited),
        ]
        if self.shape_prior is not None:
            parts.append(self.shape_prior**0.5 * x[:, 75:])
        anchor = self.anchor[rows]
        smooth = torch.cat(
            [(torso_relative(pts) - anchor[:, :, :3]).flatten(1), (depth / anchor[:, 0, 3].clamp_min(1e-6)).log()[:, None]], 1
        )
        parts.append(self.smooth**0.5 * self.has_anchor[rows, None] * smooth)
        return torch.cat(parts, 1)

    def jacobian(self, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals (N, R) of every fit at ``x`` (N, nx) and their forward-difference Jacobian (N, nx, R), step ``eps``.

        Without a shape change the 72 rotation probes come from one kinematic chain
        (``KeypointSkinner.probed``) and the 3 translation probes move the keypoints rigidly: the same
        numbers as evaluating every probe, ~10x cheaper."""
        n, nx = x.shape
        rows = torch.arange(n, device=x.device)
        probe = x[:, None].repeat(1, nx, 1) + eps * torch.eye(nx, dtype=x.dtype, device=x.device)[None]
        if self.shape_prior is not None:
            r0 = self.residuals(x, rows)
            r = self.residuals(probe.reshape(-1, nx), rows.repeat_interleave(nx))
            return r0, (r.reshape(n, nx, -1) - r0[:, None]) / eps
        rot, trans, _ = self.unpack(x, rows)
        eye3 = torch.eye(3, dtype=x.dtype, device=x.device)
        nudged = x[:, :72].reshape(n, 24, 1, 3) + eps * eye3  # (n, 24, 3, 3): joint, direction, axis-angle
        turned = self.rot0[:, :, None] @ axis_angle_to_rotmat(nudged)  # each joint's rotation, nudged along each axis
        pts, moved = self.skin.probed(rot, trans, turned)  # (n, 17, 3), (n, 24, 3, 17, 3)
        r0 = self._assemble(pts, rot[:, list(LIMITED)], x, trans[:, 2], rows)  # the unprobed body, from the same chain
        shifted = torch.stack([self._trans(probe[:, 72 + d, 72:75], rows) for d in range(3)], 1)  # (n, 3, 3)
        pts_all = torch.cat([moved.reshape(n, 72, 17, 3), pts[:, None] + (shifted - trans[:, None])[:, :, None]], 1)
        limited = rot[:, list(LIMITED)][:, None].repeat(1, nx, 1, 1, 1)
        for i, j in enumerate(LIMITED):
            limited[:, 3 * j : 3 * j + 3, i] = turned[:, j]
        depth = torch.cat([trans[:, None, 2].expand(n, 72), shifted[:, :, 2]], 1)
        r = self._assemble(pts_all.reshape(-1, 17, 3), limited.reshape(-1, 7, 3, 3), probe.reshape(-1, nx), depth.reshape(-1),
                           rows.repeat_interleave(nx))  # fmt: skip
        return r0, (r.reshape(n, nx, -1) - r0[:, None]) / eps
