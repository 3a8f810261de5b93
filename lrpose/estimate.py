"""Single-person estimation: crop -> range -> RSC-Net -> body model -> full-frame camera.

Used by ``lrpose image`` (one crop) and, batched, by the video pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrpose import assets
from lrpose.body import BodyModel
from lrpose.crops import SquareCrop, apply_affine, crop_person, validate_box
from lrpose.geometry import cam_crop_to_full, rotmat_to_axis_angle, weak_perspective_project
from lrpose.models.checkpoint import CheckpointInfo, load_checkpoint
from lrpose.models.regressor import MeanParams, load_mean_params
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.resolution import below_minimum, select_range

SPIN_FOCAL_PX = 5000.0
SPIN_CROP_PX = 224.0
UNTRAINED_SEED = 0


@dataclass(frozen=True)
class PersonEstimate:
    """One person in one image (numpy, ready to save)."""

    pose: np.ndarray
    """(72,) axis-angle, root first; the root is in the camera frame (x right, y down, z forward)."""
    betas: np.ndarray
    """(10,)"""
    rotmats: np.ndarray
    """(24, 3, 3)"""
    pred_cam: np.ndarray
    """(3,) weak-perspective crop camera ``[s, tx, ty]``."""
    trans: np.ndarray
    """(3,) full-frame camera translation (metres) for ``focal_px`` and the image centre."""
    focal_px: float
    joints3d: np.ndarray
    """(24, 3) metres, camera-frame orientation, before translation."""
    joints2d: np.ndarray
    """(24, 2) image pixels (weak-perspective projection through the crop)."""
    vertices: np.ndarray
    """(V, 3) metres, like ``joints3d``."""
    square: SquareCrop
    range_index: int
    below_minimum: bool


def default_mean_params(body: BodyModel) -> MeanParams:
    """SPIN's mean parameters for the real SMPL when present, else the stand-in's shipped ones."""
    if body.name == "smpl":
        spin = assets.locate("smpl_mean_params").path
        if spin is not None:
            return load_mean_params(spin)
    return load_mean_params(assets.resolve("standin_mean_params"))


def load_model(weights: Path | None, body: BodyModel, config: RSCNetConfig | None = None) -> tuple[RSCNet, CheckpointInfo]:
    """The RSC-Net to use: ``weights`` if given (must exist), else the one the resolver finds, else an
    UNTRAINED model (seeded, flagged ``trained=False``; callers must warn loudly)."""
    path = assets.resolve("rscnet", weights) if weights is not None else assets.locate("rscnet").path
    if path is not None:
        model, info = load_checkpoint(path)
    else:
        config = config or RSCNetConfig()
        torch.manual_seed(UNTRAINED_SEED)
        model = RSCNet(config, default_mean_params(body))
        info = CheckpointInfo(f"untrained(seed={UNTRAINED_SEED})", "untrained", False, None, config)
    return model.eval(), info


def focal_for(width: int, height: int) -> float:
    """Full-image focal length in pixels: SPIN's 5000 px at 224 px, scaled to the image's longer side."""
    return SPIN_FOCAL_PX / SPIN_CROP_PX * max(width, height)


@dataclass(frozen=True)
class BodyGeometry:
    """Network outputs turned into the body and cameras, (B, ...) numpy float32."""

    pose: np.ndarray
    """(B, 72) axis-angle."""
    joints3d: np.ndarray
    """(B, 24, 3) metres, camera-frame orientation, before translation."""
    joints2d: np.ndarray
    """(B, 24, 2) full-image pixels (weak perspective through each crop)."""
    vertices: np.ndarray
    """(B, V, 3) metres, before translation."""
    trans: np.ndarray
    """(B, 3) full-frame translation (metres) for ``focal_px`` and the image centre."""
    orig_cam: np.ndarray
    """(B, 4) VIBE's full-image weak-perspective camera ``[sx, sy, tx, ty]``."""
    focal_px: float


@torch.no_grad()
def body_geometry(
    body: BodyModel, rotmats: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, squares: list[SquareCrop], input_size: int,
    width: int, height: int,
) -> BodyGeometry:  # fmt: skip
    """Pose the body for (B, 24, 3, 3) ``rotmats``, (B, 10) ``betas`` and (B, 3) crop cameras of
    people cropped by ``squares`` (network input ``input_size``) from a ``width`` x ``height`` image."""
    posed = body(rotmats[:, 1:], rotmats[:, 0], betas)
    s = input_size
    # weak perspective in [-1, 1] crop units -> crop pixels (edges at -0.5 and S - 0.5) -> image pixels
    uv = ((weak_perspective_project(posed.joints, cam) + 1.0) * s / 2.0 - 0.5).numpy()
    joints2d = np.stack([apply_affine(sq.crop_to_image(s), p) for sq, p in zip(squares, uv, strict=True)]) if squares else uv
    focal = focal_for(width, height)
    # box centre and image centre both in edge convention (their difference is what matters)
    center = torch.tensor([[sq.x0 + sq.side / 2.0, sq.y0 + sq.side / 2.0] for sq in squares]).reshape(-1, 2)
    side = torch.tensor([float(sq.side) for sq in squares])
    n = len(squares)
    trans = cam_crop_to_full(cam, center, side, torch.tensor([[float(width), float(height)]]).expand(n, 2), torch.full((n,), focal))
    sx, sy = cam[:, 0] * side / width, cam[:, 0] * side / height
    tx = (center[:, 0] - width / 2.0) / (width / 2.0) / sx + cam[:, 1]
    ty = (center[:, 1] - height / 2.0) / (height / 2.0) / sy + cam[:, 2]
    return BodyGeometry(
        pose=rotmat_to_axis_angle(rotmats).reshape(-1, 72).numpy(),
        joints3d=posed.joints.numpy(),
        joints2d=joints2d.astype(np.float32),
        vertices=posed.vertices.numpy(),
        trans=trans.numpy(),
        orig_cam=torch.stack([sx, sy, tx, ty], 1).numpy(),
        focal_px=focal,
    )


class Estimator:
    """RSC-Net + body model for single crops."""

    def __init__(self, model: RSCNet, info: CheckpointInfo, body: BodyModel) -> None:
        self.model, self.info, self.body = model.eval(), info, body

    @torch.no_grad()
    def estimate(self, image: np.ndarray, box_xyxy: np.ndarray | None = None) -> PersonEstimate:
        """Estimate the person in ``box_xyxy`` (padded 1.2x), or treat the whole image as a person-centred crop."""
        h, w = image.shape[:2]
        if box_xyxy is None:
            pixels, sq = crop_person(image, np.array([0.0, 0.0, w, h]), self.model.config.input_size, scale=1.0)
        else:
            pixels, sq = crop_person(image, validate_box(box_xyxy, w, h), self.model.config.input_size)
        p = select_range(sq.side)
        out = self.model(pixels[None], p)
        g = body_geometry(self.body, out.rotmats, out.betas, out.cam, [sq], self.model.config.input_size, w, h)
        return PersonEstimate(
            pose=g.pose[0],
            betas=out.betas[0].numpy(),
            rotmats=out.rotmats[0].numpy(),
            pred_cam=out.cam[0].numpy(),
            trans=g.trans[0],
            focal_px=g.focal_px,
            joints3d=g.joints3d[0],
            joints2d=g.joints2d[0],
            vertices=g.vertices[0],
            square=sq,
            range_index=p,
            below_minimum=below_minimum(sq.side),
        )
