"""COCO-17 keypoints of posed bodies without touching the mesh (``KeypointSkinner``) and the
perspective projection the keypoint fit uses (``project``)."""

from __future__ import annotations

import torch

from lrpose.body import BodyModel


class KeypointSkinner:
    """COCO-17 keypoints of bodies with shapes ``betas`` (B, 10), differentiable in the joint rotations
    and in a shape change. A keypoint is a fixed linear combination of skinned vertices, so with linear
    blend skinning it is ``sum_j A_j @ M_kj`` where ``A_j`` (3, 4) is joint j's skinning transform and
    ``M_kj`` (4,) = sum over vertices of regressor weight x skinning weight x ``[v; 1]``: computed once per
    body, the per-step cost no longer depends on the number of vertices."""

    def __init__(self, body: BodyModel, betas: torch.Tensor) -> None:
        from smplx.lbs import blend_shapes, vertices2joints

        dt = betas.dtype
        reg = body.coco_regressor().to(betas.device, dt)
        support = torch.nonzero(reg.abs().sum(0) > 0).squeeze(1)
        layer = body.layer
        shapedirs, j_reg = layer.shapedirs.to(dt), layer.J_regressor.to(dt)
        with torch.no_grad():
            rw = reg[:, support, None] * layer.lbs_weights[support].to(dt)[None]  # (17, S, 24)
            v_shaped = layer.v_template.to(dt) + blend_shapes(betas, shapedirs)
            self.joints_rest = vertices2joints(j_reg, v_shaped)  # (B, 24, 3)
            self.moments = torch.cat(  # (B, 17, 24, 4): sum_s rw_ksj [v_s; 1]
                [torch.einsum("ksj,bsi->bkji", rw, v_shaped[:, support]), rw.sum(1)[None, :, :, None].expand(len(betas), -1, -1, 1)], -1
            )
            self.moment_shapedirs = torch.einsum("ksj,sil->kjil", rw, shapedirs[support])  # (17, 24, 3, 10)
            self.joint_shapedirs = torch.einsum("jv,vik->jik", j_reg, shapedirs)  # (24, 3, 10)
        self.parents = layer.parents

    def select(self, rows: torch.Tensor) -> KeypointSkinner:
        """The skinner of people ``rows`` (may repeat)."""
        out = object.__new__(KeypointSkinner)
        out.__dict__.update(self.__dict__)
        out.joints_rest, out.moments = self.joints_rest[rows], self.moments[rows]
        return out

    def __call__(self, rotmats: torch.Tensor, trans: torch.Tensor, dbetas: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 24, 3, 3) rotations, (B, 3) translation, optional (B, 10) shape change -> (B, 17, 3) COCO keypoints, camera frame."""
        from smplx.lbs import batch_rigid_transform

        joints, moments = self.joints_rest, self.moments
        if dbetas is not None:
            joints = joints + torch.einsum("jik,bk->bji", self.joint_shapedirs, dbetas)
            moments = moments + torch.nn.functional.pad(torch.einsum("kjil,bl->bkji", self.moment_shapedirs, dbetas), (0, 1))
        _, rel = batch_rigid_transform(rotmats, joints, self.parents, dtype=rotmats.dtype)
        return torch.einsum("bjim,bkjm->bki", rel[:, :, :3, :], moments) + trans[:, None]


def project(points: torch.Tensor, focal_px: float, center_px: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) camera-frame points -> (B, N, 2) pixels (pixel centres at integers)."""
    return focal_px * points[..., :2] / points[..., 2:].clamp_min(1e-3) + center_px
