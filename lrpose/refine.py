"""Keypoint-guided fitting (SPIN/EFT style): the body of each person is fitted to the detector's
COCO-17 keypoints, with the network's prediction and the track's motion as the prior.

Per person-frame with at least ``min_keypoints`` confident keypoints, these are optimised (Adam,
``iters`` steps, batched over every person of a chunk of frames; deterministic):

- ``delta`` (24, 3): axis-angle residuals on the network's joint rotations (root included),
  ``R_j = R_net_j @ exp(delta_j)``; betas stay the network's;
- ``trans`` (3): the full-frame camera translation (metres), started from the network's.

Loss, per person (keypoint residuals in units of the person's box height ``h``):

- data: confidence-weighted Geman-McClure ``s^2 r^2 / (s^2 + r^2)`` of the 2D reprojection error
  (perspective camera, focal ``focal_px``, principal point at the image centre), so one wrong
  keypoint cannot pull the fit far;
- prior: ``w * |delta|^2`` towards the network, weaker where the keypoints are confident and
  the person is large (``w`` scaled by ``1.5 - mean confidence`` and ``clip(80 / h, 0.5, 2)``);
- joint limits: knees and elbows bend one way, the spine does not fold;
- temporal: the change between consecutive frames of a track of the keypoints relative to the torso
  (metres) and of the log depth;
- front/back: every fit is also started from the body turned 180 degrees about its own vertical
  axis; the start with the lower final data + limit cost wins (the keypoints' left/right labels
  and face keypoints decide which way the person faces).

The body is skinned only on the vertices the COCO regressor reads (about 1000 of the stand-in's
13,718); pose correctives of the real SMPL are left out of the fit (the final mesh has them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lrpose.body import BodyModel
from lrpose.config import check_minimums
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

KNEES, ELBOWS, SPINE = (4, 5), (18, 19), (3, 6, 9)
TORSO = (5, 6, 11, 12)
"""COCO shoulders and hips."""


@dataclass(frozen=True)
class RefineConfig:
    """Settings of the keypoint fit (defaults measured on synthetic clips, ``benchmarks/RESULTS.md``)."""

    iters: int = 30
    """Adam steps per chunk (0: no refinement)."""
    lr: float = 0.04
    min_keypoints: int = 6
    """Confident keypoints a person-frame needs to be refined (else it keeps the network's result)."""
    min_conf: float = 0.3
    """Keypoints below this confidence are ignored."""
    robust_scale: float = 0.1
    """Geman-McClure scale ``s`` in units of the person's height."""
    prior: float = 2e-3
    limits: float = 0.1
    smooth: float = 2.0
    flip: bool = True
    """Also try the 180-degree-turned start."""

    def __post_init__(self) -> None:
        check_minimums(self, iters=0, lr=0.0, min_keypoints=1, min_conf=0.0, robust_scale=1e-6, prior=0.0, limits=0.0, smooth=0.0)


@dataclass(frozen=True)
class RefineResult:
    """Fitted bodies, (B, ...) like the inputs."""

    rotmats: torch.Tensor
    """(B, 24, 3, 3) joint rotations (the network's where ``refined`` is False)."""
    trans: torch.Tensor
    """(B, 3) full-frame camera translation, metres."""
    refined: torch.Tensor
    """(B,) bool."""
    residual_before: torch.Tensor
    """(B,) mean pixel distance of the body's COCO keypoints to the confident detector keypoints (NaN without)."""
    residual_after: torch.Tensor


class KeypointSkinner:
    """COCO-17 keypoints of a body with fixed shapes, differentiable in the joint rotations: linear
    blend skinning on the regressor's support vertices only."""

    def __init__(self, body: BodyModel, betas: torch.Tensor) -> None:
        from smplx.lbs import blend_shapes, vertices2joints

        reg = body.coco_regressor().to(betas.device)
        self.support = torch.nonzero(reg.abs().sum(0) > 0).squeeze(1)
        self.reg = reg[:, self.support]
        layer = body.layer
        with torch.no_grad():
            v_shaped = layer.v_template + blend_shapes(betas, layer.shapedirs)
            self.joints_rest = vertices2joints(layer.J_regressor, v_shaped)
            self.v_support = v_shaped[:, self.support]
        self.weights = layer.lbs_weights[self.support]
        self.parents = layer.parents

    def __call__(self, rotmats: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """(B, 24, 3, 3) rotations, (B, 3) translation -> (B, 17, 3) COCO keypoints, camera frame."""
        from smplx.lbs import batch_rigid_transform

        b = rotmats.shape[0]
        _, rel = batch_rigid_transform(rotmats, self.joints_rest, self.parents, dtype=rotmats.dtype)
        t = torch.matmul(self.weights, rel.reshape(b, 24, 16)).reshape(b, -1, 4, 4)
        v = torch.matmul(t[..., :3, :3], self.v_support.unsqueeze(-1))[..., 0] + t[..., :3, 3]
        return torch.einsum("jv,bvi->bji", self.reg, v) + trans[:, None]


def project(points: torch.Tensor, focal_px: float, center_px: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) camera-frame points -> (B, N, 2) pixels (pixel centres at integers)."""
    return focal_px * points[..., :2] / points[..., 2:].clamp_min(1e-3) + center_px


def _geman_mcclure(r2: torch.Tensor, scale: float) -> torch.Tensor:
    return scale**2 * r2 / (scale**2 + r2)


def _limit_cost(rotmats: torch.Tensor) -> torch.Tensor:
    """(B,) penalty for knees/elbows bending the wrong way (and twisting) and a folding spine."""
    aa = rotmat_to_axis_angle(rotmats)
    knee = torch.relu(-aa[:, KNEES, 0]) ** 2 + 0.1 * aa[:, KNEES, 1:].pow(2).sum(-1)
    elbow = torch.relu(aa[:, ELBOWS[0], 1]) ** 2 + torch.relu(-aa[:, ELBOWS[1], 1]) ** 2
    spine = torch.relu(aa[:, SPINE].norm(dim=-1) - 0.6) ** 2
    return knee.sum(1) + elbow + spine.sum(1)


def _turned(rotmats: torch.Tensor) -> torch.Tensor:
    """The same bodies turned 180 degrees about their own vertical (y) axis."""
    turn = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=rotmats.dtype, device=rotmats.device))
    out = rotmats.clone()
    out[:, 0] = rotmats[:, 0] @ turn
    return out


@torch.no_grad()
def _align_translation(
    skin: KeypointSkinner,
    rotmats: torch.Tensor,
    trans: torch.Tensor,
    kp: torch.Tensor,
    conf: torch.Tensor,
    focal_px: float,
    center_px: torch.Tensor,
) -> torch.Tensor:
    """Move each body in depth and across the image so its projected keypoints match the detector's
    in size and centre (confidence-weighted): the closed-form start of the fit (the network's depth
    can be far off on real images)."""
    uv = project(skin(rotmats, trans), focal_px, center_px)
    torso = torch.zeros_like(conf)
    torso[:, list(TORSO)] = conf[:, list(TORSO)]
    use = torch.where(((torso > 0).sum(1) >= 3)[:, None], torso, conf)  # the torso when it is seen: limbs move, outliers happen
    w = use / use.sum(1, keepdim=True).clamp_min(1e-6)
    mu_b, mu_k = (w[..., None] * uv).sum(1), (w[..., None] * kp[..., :2]).sum(1)
    spread_b = (w * (uv - mu_b[:, None]).pow(2).sum(-1)).sum(1).sqrt()
    spread_k = (w * (kp[..., :2] - mu_k[:, None]).pow(2).sum(-1)).sum(1).sqrt()
    scale = (spread_k / spread_b.clamp_min(1e-6)).clamp(0.25, 4.0)
    tz = trans[:, 2] / scale
    # the body's keypoint centre, seen from the new depth, lands on the detector's
    pts = skin(rotmats, torch.zeros_like(trans))
    centre3d = (w[..., None] * pts).sum(1)
    xy = (mu_k - center_px) / focal_px * (tz + centre3d[:, 2])[:, None] - centre3d[:, :2]
    return torch.cat([xy, tz[:, None]], 1)


class Refiner:
    """``Refiner(body, config).fit(...)``: batched keypoint fitting (see the module docstring)."""

    def __init__(self, body: BodyModel, config: RefineConfig | None = None) -> None:
        self.body, self.config = body, config or RefineConfig()

    def fit(
        self,
        rotmats: torch.Tensor,
        betas: torch.Tensor,
        trans: torch.Tensor,
        keypoints: torch.Tensor,
        heights: torch.Tensor,
        focal_px: float,
        center_px: torch.Tensor,
        previous: torch.Tensor | None = None,
    ) -> RefineResult:
        """Fit (B, 24, 3, 3) ``rotmats``, (B, 10) ``betas`` (fixed), (B, 3) ``trans`` to (B, 17, 3)
        detector ``keypoints`` (pixels + confidence; NaN or 0 confidence = absent) of people with box
        heights (B,) px, in an image with ``focal_px`` and principal point ``center_px`` (2,).
        ``previous`` (B,) long: the row of the same track's previous frame in this batch, or -1."""
        cfg = self.config
        rotmats, betas, trans, heights, center_px = rotmats.float(), betas.float(), trans.float(), heights.float(), center_px.float()
        kp = torch.nan_to_num(keypoints.float(), nan=0.0)
        conf = torch.where(kp[..., 2] >= cfg.min_conf, kp[..., 2], torch.zeros_like(kp[..., 2]))
        todo = (conf > 0).sum(1) >= cfg.min_keypoints
        with torch.no_grad():
            before = self._residual(KeypointSkinner(self.body, betas), rotmats, trans, kp, conf, focal_px, center_px)
        if not bool(todo.any()) or cfg.iters == 0:
            return RefineResult(rotmats, trans, torch.zeros_like(todo), before, before.clone())
        idx = torch.nonzero(todo).squeeze(1)
        trans_in, trans = trans, trans.clone()
        trans[idx] = _align_translation(
            KeypointSkinner(self.body, betas[idx]), rotmats[idx], trans[idx], kp[idx], conf[idx], focal_px, center_px
        )
        prev = self._previous_rows(previous, todo, idx)
        starts = [rotmats[idx]] + ([_turned(rotmats[idx])] if cfg.flip else [])
        n = len(idx)
        rot0 = torch.cat(starts)
        fit_rot, fit_trans, cost = self._optimise(
            rot0, betas[idx].repeat(len(starts), 1), trans[idx].repeat(len(starts), 1), kp[idx].repeat(len(starts), 1, 1),
            conf[idx].repeat(len(starts), 1), heights[idx].float().repeat(len(starts)), focal_px, center_px,
            torch.cat([torch.where(prev >= 0, prev + k * n, prev) for k in range(len(starts))]),
        )  # fmt: skip
        best = cost.reshape(len(starts), n).argmin(0)
        pick = best * n + torch.arange(n)
        out_rot, out_trans = rotmats.clone(), trans_in.clone()
        out_rot[idx], out_trans[idx] = fit_rot[pick], fit_trans[pick]
        with torch.no_grad():
            after = self._residual(KeypointSkinner(self.body, betas), out_rot, out_trans, kp, conf, focal_px, center_px)
        worse = todo & ~(after < before)  # a fit that does not bring the body closer to the keypoints is not used
        out_rot[worse], out_trans[worse], after[worse] = rotmats[worse], trans_in[worse], before[worse]
        return RefineResult(out_rot, out_trans, todo & ~worse, before, after)

    @staticmethod
    def _previous_rows(previous: torch.Tensor | None, todo: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``previous`` re-indexed into the refined subset (-1 where the previous row is not refined)."""
        if previous is None:
            return torch.full((len(idx),), -1, dtype=torch.long)
        where = torch.full((len(todo),), -1, dtype=torch.long)
        where[idx] = torch.arange(len(idx))
        p = previous[idx]
        return torch.where(p >= 0, where[p.clamp_min(0)], p)

    def _optimise(self, rot0, betas, trans0, kp, conf, heights, focal_px, center_px, prev):  # noqa: ANN001
        """Adam on (delta, trans); returns rotations, translations and each fit's final data + limit cost."""
        cfg = self.config
        skin = KeypointSkinner(self.body, betas)
        with torch.no_grad():
            start = skin(rot0, trans0)
        delta = torch.zeros(rot0.shape[0], 24, 3, requires_grad=True)
        trans = trans0.clone().requires_grad_(True)
        optim = torch.optim.Adam([{"params": [delta], "lr": cfg.lr}, {"params": [trans], "lr": cfg.lr * 0.5}])
        mean_conf = conf.sum(1) / (conf > 0).sum(1).clamp_min(1)
        w_prior = cfg.prior * (1.5 - mean_conf) * (80.0 / heights).clamp(0.5, 2.0)
        has_prev = prev >= 0
        with torch.enable_grad():  # the pipeline runs under no_grad
            self._steps(optim, delta, trans, rot0, skin, start, kp, conf, heights, focal_px, center_px, w_prior, prev, has_prev)
        with torch.no_grad():
            rot = rot0 @ axis_angle_to_rotmat(delta)
            r2 = ((project(skin(rot, trans), focal_px, center_px) - kp[..., :2]) / heights[:, None, None]).pow(2).sum(-1)
            cost = (conf * _geman_mcclure(r2, cfg.robust_scale)).sum(1) / conf.sum(1).clamp_min(1e-6) + cfg.limits * _limit_cost(rot)
        return rot.detach(), trans.detach(), cost

    def _steps(self, optim, delta, trans, rot0, skin, start, kp, conf, heights, focal_px, center_px, w_prior, prev, has_prev) -> None:  # noqa: ANN001
        cfg = self.config
        for _ in range(cfg.iters):
            rot = rot0 @ axis_angle_to_rotmat(delta)
            pts = skin(rot, trans)
            r2 = ((project(pts, focal_px, center_px) - kp[..., :2]) / heights[:, None, None]).pow(2).sum(-1)
            data = (conf * _geman_mcclure(r2, cfg.robust_scale)).sum(1) / conf.sum(1).clamp_min(1e-6)
            fit = data + cfg.limits * _limit_cost(rot)
            loss = fit + w_prior * delta.pow(2).sum((1, 2))
            if bool(has_prev.any()):
                rows = torch.nonzero(has_prev).squeeze(1)
                rel = pts - pts[:, list(TORSO)].mean(1, keepdim=True)  # the body's shape of keypoints, metres
                step = (rel[rows] - rel[prev[rows]]).pow(2).sum((1, 2)) + (trans[rows, 2] / trans[prev[rows], 2]).log().pow(2)
                loss = loss + cfg.smooth * torch.zeros_like(loss).index_add(0, rows, step)
            optim.zero_grad(set_to_none=True)
            loss.sum().backward()
            optim.step()

    @staticmethod
    def _residual(skin, rotmats, trans, kp, conf, focal_px, center_px) -> torch.Tensor:  # noqa: ANN001
        """(B,) mean pixel distance over the confident keypoints (NaN for people without any)."""
        d = (project(skin(rotmats, trans), focal_px, center_px) - kp[..., :2]).norm(dim=-1)
        used = conf > 0
        total = (d * used).sum(1)
        count = used.sum(1)
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))
