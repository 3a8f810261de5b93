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
        below = torch.eye(len(self.parents), dtype=dt, device=betas.device)  # (24, 24): [j, k] = 1 where k is j or below j in the tree
        for k, parent in enumerate(self.parents.tolist()[1:], start=1):  # one read of the tree (no per-joint device sync)
            below[:, k] += below[:, parent]
        self.below = below.clamp_max(1.0)

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

    def probed(self, rotmats: torch.Tensor, trans: torch.Tensor, probes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints of (B, 24, 3, 3) ``rotmats`` + (B, 3) ``trans``, and of the same bodies with one joint's
        rotation replaced at a time: ``probes`` (B, 24, D, 3, 3) holds D alternatives for each joint's
        rotation. Returns (B, 17, 3) and (B, 24, D, 17, 3), camera frame; exact (the same as calling the
        skinner on each changed pose), at the cost of one kinematic chain instead of 24 x D: changing
        joint j turns every transform below it about the joint's posed position ``c_j`` by the world
        rotation ``W = Rp (R_j' R_j^T) Rp^T`` (``Rp``: j's parent's world rotation), so each keypoint moves by
        ``(W - I)`` applied to its skinning moments below j taken about ``c_j``."""
        from smplx.lbs import batch_rigid_transform

        posed, rel = batch_rigid_transform(rotmats, self.joints_rest, self.parents, dtype=rotmats.dtype)
        per_joint = torch.einsum("bjim,bkjm->bkji", rel[:, :, :3, :], self.moments)  # (B, 17, 24, 3): each joint's share
        pts = per_joint.sum(2) + trans[:, None]
        below = self.below.to(rotmats.dtype)
        share = torch.einsum("jl,bkli->bjki", below, per_joint)  # (B, 24, 17, 3): what joint j moves
        weight = torch.einsum("jl,bkl->bjk", below, self.moments[..., 3])  # (B, 24, 17): its skinning weight
        about = share - posed[:, :, None, :] * weight[..., None]  # moments about the joint's posed position
        world = rel[:, :, :3, :3]
        eye3 = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        parent_world = torch.cat([eye3.expand(len(rotmats), 1, 3, 3), world[:, self.parents[1:]]], 1)
        turn = parent_world[:, :, None] @ probes @ rotmats[:, :, None].transpose(-1, -2) @ parent_world[:, :, None].transpose(-1, -2)
        turn = turn - eye3
        return pts, pts[:, None, None] + torch.einsum("bjdxy,bjky->bjdkx", turn, about)


def project(points: torch.Tensor, focal_px: float, center_px: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) camera-frame points -> (B, N, 2) pixels (pixel centres at integers)."""
    return focal_px * points[..., :2] / points[..., 2:].clamp_min(1e-3) + center_px
