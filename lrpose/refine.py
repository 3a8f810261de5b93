"""Keypoint-guided fitting (SPIN/EFT style): the body of each person is fitted to the detector's
COCO-17 keypoints, with the network's prediction and the track's motion as the prior.

For every person-frame at least ``min_height`` px tall with at least ``min_keypoints`` confident
keypoints, these are solved by Levenberg-Marquardt (``iters`` iterations, batched over the people
of a chunk of frames, frame by frame; deterministic):

- ``delta`` (24, 3): axis-angle residuals on the network's joint rotations (root included),
  ``R_j = R_net_j @ exp(delta_j)``; betas stay the network's unless ``fit_betas``;
- ``trans`` (3): the full-frame camera translation (metres), started from a closed-form match of the
  torso keypoints' size and centre.

Loss, per person (keypoint residuals in units of the person's box height ``h``):

- data: confidence-weighted Geman-McClure ``s^2 r^2 / (s^2 + r^2)`` of the 2D reprojection error
  (perspective camera, focal ``focal_px``, principal point at the image centre), so one wrong
  keypoint cannot pull the fit far;
- prior: ``w * |delta|^2`` towards the network, weaker where the keypoints are confident, the
  person is large and the network's keypoints differ from the detector's in shape (``w`` scaled by
  ``1.5 - mean confidence``, ``clip(80 / h, 0.05, 2)`` and ``Refiner._trust``);
- joint limits: knees and elbows bend one way, the spine does not fold;
- temporal: the change from the track's previous (already fitted) frame of the keypoints relative to
  the torso (metres) and of the log depth: frames are fitted in order, each anchored to the one before;
- front/back: where the keypoints' left/right order (``lrpose.facing``) clearly says which way the
  person faces, the fit starts from the network's pose turned to face that way; elsewhere it is also
  started from the body turned 180 degrees about its own vertical axis and the start with the lower
  final data + limit + temporal cost wins, plus ``facing`` for a fit that ends facing the other way than
  the keypoints clearly say (a side-on person leaves it to the data and the track's previous frame).

Keypoints come from the joint transforms and per-body keypoint moments (``KeypointSkinner``), so an
iteration never touches the mesh; pose correctives of the real SMPL are left out of the fit (the
final mesh has them). A fit that does not lower the keypoint residual is not used.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from lrpose.body import BodyModel
from lrpose.config import check_minimums
from lrpose.errors import InputError
from lrpose.facing import body_faces_camera, keypoint_facing, turn_around
from lrpose.fit_residuals import LIMITED, TORSO, FitProblem, limit_terms, torso_relative
from lrpose.keypoint_skin import KeypointSkinner, project


@dataclass(frozen=True)
class RefineConfig:
    """Settings of the keypoint fit (defaults measured on synthetic clips, ``benchmarks/RESULTS.md``)."""

    iters: int = 10
    """Levenberg-Marquardt iterations per chunk (0: no refinement)."""
    min_keypoints: int = 6
    """Confident keypoints a person-frame needs to be refined (else it keeps the network's result)."""
    min_conf: float = 0.3
    """Keypoints below this confidence are ignored."""
    min_height: float = 40.0
    """People whose box is shorter (px) keep the network's result: below ~40 px the detector's left/right
    labels stop being reliable (synthetic clips: 97 % right at 40-50 px, 52-63 % at 23-40 px;
    ``benchmarks/RESULTS.md``)."""
    robust_scale: float = 0.1
    """Geman-McClure scale ``s`` in units of the person's height."""
    prior: float = 0.5
    limits: float = 0.1
    smooth: float = 2.0
    flip: bool = True
    """Turn the start round where the keypoints clearly say the person faces the other way, and also fit from
    the 180-degree-turned start where they do not say clearly (one fit per person where the facing is known,
    two where it is not; False: the network's pose is the only start)."""
    trust_shape: float = 0.05
    """The network's prior is weakened (``Refiner._trust``) where its keypoints differ from the detector's in
    shape by more than this (units of the height; 0: never)."""
    facing: float = 10.0
    """Cost added to a fit that faces the other way than the keypoints' left/right order clearly says
    (larger than the temporal term's: clear keypoints turn a track that faced the wrong way round)."""
    facing_clear: float = 0.04
    """How clear (``lrpose.facing.keypoint_facing``, units of the height; frontal ~0.17) the keypoints' facing must be."""
    facing_memory: float = 0.5
    """Share of a track's facing evidence so far that carries into its next frame (0: each frame alone)."""
    fit_betas: bool = False
    """Also fit the body shape (off: 2D keypoints say little about shape; the network's betas stay)."""
    shape_prior: float = 0.01
    float32: bool = True
    """Solve in float32 (about 2x faster than float64; the same fits to ~0.1 px)."""

    def __post_init__(self) -> None:
        minimums = {"iters": 0, "min_keypoints": 1, "min_conf": 0.0, "robust_scale": 1e-6, "prior": 0.0, "limits": 0.0, "smooth": 0.0}
        check_minimums(self, **minimums, facing=0.0, facing_clear=0.0, facing_memory=0.0, trust_shape=0.0)
        if self.facing_memory >= 1.0:
            raise InputError(f"facing_memory must be below 1, got {self.facing_memory}")


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
    betas: torch.Tensor
    """(B, 10) shapes (changed only with ``fit_betas``)."""
    anchors: torch.Tensor
    """(B, 17, 4) each refined fit's keypoints relative to the torso (m) and depth, NaN elsewhere: pass
    a track's last one as ``carry`` with its next frame."""


def _geman_mcclure(r2: torch.Tensor, scale: float) -> torch.Tensor:
    return scale**2 * r2 / (scale**2 + r2)


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

    def on(self, body: BodyModel) -> Refiner:
        """The same fit with ``body`` instead (the body moved to another device: the fit runs where its inputs and body are)."""
        out = copy.copy(self)
        out.body = body
        return out

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
        carry: torch.Tensor | None = None,
        facing: torch.Tensor | None = None,
        gaps: torch.Tensor | None = None,
    ) -> RefineResult:
        """Fit (B, 24, 3, 3) ``rotmats``, (B, 10) ``betas``, (B, 3) ``trans`` to (B, 17, 3)
        detector ``keypoints`` (pixels + confidence; NaN or 0 confidence = absent) of people with box
        heights (B,) px, in an image with ``focal_px`` and principal point ``center_px`` (2,).
        ``previous`` (B,) long: the row of the same track's previous frame in this batch, or -1.
        ``carry`` (B, 17, 4): for rows whose previous frame was fitted in an earlier batch, that fit's
        ``RefineResult.anchors`` row (NaN elsewhere), so the temporal term spans batches. ``facing`` (B,):
        which way each person faces by their keypoints (``lrpose.facing.keypoint_facing``, e.g. averaged
        over the track; None: each frame's own keypoints). ``gaps`` (B,): frames between each row and the
        frame it is anchored to (None: 1); the temporal term's residuals are divided by it (a person moves
        about ``gap`` times as far). Every tensor and the body are on one device; the fit runs there."""
        cfg, dev = self.config, rotmats.device
        rotmats, betas, trans, heights, center_px = rotmats.float(), betas.float(), trans.float(), heights.float(), center_px.float()
        kp = torch.nan_to_num(keypoints.float(), nan=0.0)
        conf = torch.where(kp[..., 2] >= cfg.min_conf, kp[..., 2], torch.zeros_like(kp[..., 2]))
        todo = ((conf > 0).sum(1) >= cfg.min_keypoints) & (heights >= cfg.min_height)
        said = keypoint_facing(kp[..., :2], conf, heights) if facing is None else facing.float()
        with torch.no_grad():
            skin = KeypointSkinner(self.body, betas)  # for the residuals, the camera start and the anchors
            before = self._residual(skin(rotmats, trans), kp, conf, focal_px, center_px)
        if not bool(todo.any()) or cfg.iters == 0:
            return RefineResult(
                rotmats, trans, torch.zeros_like(todo), before, before.clone(), betas, torch.full((len(todo), 17, 4), math.nan, device=dev)
            )
        idx = torch.nonzero(todo).squeeze(1)
        trans_in, trans = trans, trans.clone()
        trans[idx] = _align_translation(skin.select(idx), rotmats[idx], trans[idx], kp[idx], conf[idx], focal_px, center_px)
        out_rot, out_trans, out_betas = rotmats.clone(), trans_in.clone(), betas.clone()
        outside = carry[idx] if carry is not None else torch.full((len(idx), 17, 4), math.nan, device=dev)
        reach = 1.0 / gaps[idx].float().clamp_min(1.0) if gaps is not None else torch.ones(len(idx), device=dev)
        fitted = self._fit_in_order(idx, self._previous_rows(previous, todo, idx), outside, rotmats, betas, trans, kp, conf, heights,
                                    focal_px, center_px, (out_rot, out_trans, out_betas), skin, said, reach)  # fmt: skip
        with torch.no_grad():
            after = self._residual(skin(out_rot, out_trans, out_betas - betas), kp, conf, focal_px, center_px)
        worse = todo & ~(after < before)  # a fit that does not bring the body closer to the keypoints is not used
        out_rot[worse], out_trans[worse], out_betas[worse], after[worse] = rotmats[worse], trans_in[worse], betas[worse], before[worse]
        anchors = torch.full((len(todo), 17, 4), math.nan, device=dev)
        anchors[idx] = fitted
        anchors[worse] = math.nan
        return RefineResult(out_rot, out_trans, todo & ~worse, before, after, out_betas, anchors)

    def _fit_in_order(
        self, idx, prev, outside, rotmats, betas, trans, kp, conf, heights, focal_px, center_px, out, skin, said, reach
    ) -> torch.Tensor:  # noqa: ANN001, E501
        """Fit rows ``idx`` frame by frame (each anchored to its track's previous fitted frame, ``prev``
        within ``idx`` or ``outside`` from an earlier batch), every start at once (``_starts``); writes the chosen fits
        into ``out`` (rotations, translations, betas) and returns each row's (17, 4) anchor."""
        out_rot, out_trans, out_betas = out
        dev = idx.device
        fitted = torch.zeros(len(idx), 17, 4, device=dev)  # per refined row: keypoints relative to the torso (m) and depth
        levels: list[int] = []
        for p in prev.tolist():  # rows come in frame order: a row's previous frame has a lower level
            levels.append(levels[p] + 1 if p >= 0 else 0)
        level = torch.tensor(levels, dtype=torch.long, device=dev)
        for lv in range(max(levels) + 1 if levels else 0):  # frame by frame: each fit is anchored to the one before
            sub = torch.nonzero(level == lv).squeeze(1)
            rows = idx[sub]
            inside = prev[sub] >= 0
            anchor = torch.where(inside[:, None, None], fitted[prev[sub].clamp_min(0)], outside[sub])
            has_anchor = (inside | torch.isfinite(outside[sub]).all(-1).all(-1)) * reach[sub]  # the temporal term's weight
            anchor = torch.nan_to_num(anchor, nan=1.0)
            m = len(rows)
            first, again = self._starts(rotmats[rows], said[rows])
            cand = torch.cat([torch.arange(m, device=dev), again])  # each candidate fit's position in ``rows``
            starts, crow = torch.cat([first, turn_around(first[again])]), rows[cand]
            trust = self._trust(skin.select(rows)(rotmats[rows], trans[rows]), kp[rows], conf[rows], heights[rows], focal_px, center_px)
            fit_rot, fit_trans, fit_betas, cost = self._optimise(
                starts, betas[crow], trans[crow], kp[crow], conf[crow], heights[crow], focal_px, center_px, anchor[cand], has_anchor[cand],
                trust[cand],
            )  # fmt: skip
            cost = cost + self._facing_penalty(crow, said[crow], fit_rot, fit_trans, fit_betas - betas[crow], skin, heights, focal_px,
                                               center_px)  # fmt: skip
            pick = torch.arange(m, device=dev)
            if len(again):  # the turned start wins where it ends cheaper
                turned = m + torch.arange(len(again), device=dev)
                pick[again] = torch.where(cost[turned] < cost[again], turned, again)
            out_rot[rows], out_trans[rows], out_betas[rows] = fit_rot[pick], fit_trans[pick], fit_betas[pick]
            with torch.no_grad():
                pts = skin.select(rows)(out_rot[rows], out_trans[rows], out_betas[rows] - betas[rows])
            fitted[sub] = torch.cat([pts - pts[:, list(TORSO)].mean(1, keepdim=True), out_trans[rows, None, 2:].expand(-1, 17, 1)], 2)
        return fitted

    def _starts(self, rot: torch.Tensor, said: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fits' starts for (M, 24, 3, 3) network poses ``rot`` with keypoint facing ``said`` (M,): the
        network's pose, turned round where the keypoints clearly say it faces the other way, and
        (``again``, positions) the people whose keypoints do not say clearly, who are also fitted from the
        turned pose (with ``flip``): one fit per person where the facing is known, two where it is not."""
        cfg = self.config
        if not cfg.flip:
            return rot, torch.zeros(0, dtype=torch.long, device=rot.device)
        clear = (said.abs() >= cfg.facing_clear) & (cfg.facing > 0)  # facing 0: the keypoints' facing is not used
        wrong = clear & (body_faces_camera(rot[:, 0]) != (said > 0))
        first = torch.where(wrong[:, None, None, None], turn_around(rot), rot) if bool(wrong.any()) else rot
        return first, torch.nonzero(~clear).squeeze(1)

    def _facing_penalty(self, rows, said, rot, trans, dbetas, skin, heights, focal_px, center_px) -> torch.Tensor:  # noqa: ANN001
        """(N,) ``facing`` for each fit (of people ``rows`` (N,), a row may repeat) that faces the other way than
        the keypoints clearly ``said`` (N,) (``lrpose.facing``: their left/right order about the torso)."""
        cfg = self.config
        with torch.no_grad():
            uv = project(skin.select(rows)(rot, trans, dbetas), focal_px, center_px)
        shown = keypoint_facing(uv, torch.ones_like(uv[..., 0]), heights[rows])
        return cfg.facing * ((said.abs() >= cfg.facing_clear) & (said * shown < 0)).float()

    @staticmethod
    def _previous_rows(previous: torch.Tensor | None, todo: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``previous`` re-indexed into the refined subset (-1 where the previous row is not refined)."""
        if previous is None:
            return torch.full((len(idx),), -1, dtype=torch.long, device=idx.device)
        where = torch.full((len(todo),), -1, dtype=torch.long, device=idx.device)
        where[idx] = torch.arange(len(idx), device=idx.device)
        p = previous[idx]
        return torch.where(p >= 0, where[p.clamp_min(0)], p)

    def _optimise(
        self, rot0: torch.Tensor, betas: torch.Tensor, trans0: torch.Tensor, kp: torch.Tensor, conf: torch.Tensor,
        heights: torch.Tensor, focal_px: float, center_px: torch.Tensor, anchor: torch.Tensor, has_anchor: torch.Tensor,
        trust: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Levenberg-Marquardt per fit on ``lrpose.fit_residuals.FitProblem``'s parameters with iteratively
        reweighted Geman-McClure data residuals; Jacobians by forward differences, all fits at once.
        Returns rotations, translations, betas and each fit's final data + limit + temporal cost."""
        cfg = self.config
        dt = torch.float32 if cfg.float32 else torch.float64
        rot0, trans0, kp, conf, heights, center = rot0.to(dt), trans0.to(dt), kp.to(dt), conf.to(dt), heights.to(dt), center_px.to(dt)
        mean_conf = conf.sum(1) / (conf > 0).sum(1).clamp_min(1)
        w_prior = cfg.prior * trust.to(dt) * (1.5 - mean_conf) * (80.0 / heights).clamp(0.05, 2.0)
        problem = FitProblem(
            KeypointSkinner(self.body, betas.to(dt)), rot0, trans0, kp, heights, w_prior, anchor.to(dt), has_anchor, focal_px, center,
            cfg.limits, cfg.smooth, cfg.shape_prior if cfg.fit_betas else None,
        )  # fmt: skip
        n, nx, dev = rot0.shape[0], problem.nx, rot0.device
        x = torch.zeros(n, nx, dtype=dt, device=dev)
        rows = torch.arange(n, device=dev)
        lam = torch.full((n,), 1e-3, dtype=dt, device=dev)
        eye = torch.eye(nx, dtype=dt, device=dev)
        with torch.no_grad():
            for _ in range(cfg.iters):
                rot, trans, shape = problem.unpack(x, rows)
                r2 = self._data_r2(problem, problem.skin(rot, trans, shape))
                problem.weights = (conf * cfg.robust_scale**4 / (cfg.robust_scale**2 + r2).pow(2)).sqrt()  # IRLS of Geman-McClure
                r0, jac = problem.jacobian(x, 1e-3 if cfg.float32 else 1e-5)
                jtj, jtr = jac @ jac.transpose(1, 2), jac @ r0[..., None]
                step = torch.linalg.solve(jtj + lam[:, None, None] * (eye + torch.diag_embed(jtj.diagonal(dim1=1, dim2=2))), -jtr)[..., 0]
                better = problem.residuals(x + step, rows).pow(2).sum(1) < r0.pow(2).sum(1)
                x = torch.where(better[:, None], x + step, x)
                lam = torch.where(better, lam * 0.3, lam * 10.0).clamp(1e-7, 1e7)
            rot, trans, shape = problem.unpack(x, rows)
            pts = problem.skin(rot, trans, shape)
            r2 = self._data_r2(problem, pts)
            cost = (conf * _geman_mcclure(r2, cfg.robust_scale)).sum(1) / conf.sum(1).clamp_min(1e-6)
            cost = cost + cfg.limits * limit_terms(rot[:, list(LIMITED)]).pow(2).sum(1)
            cost = cost + cfg.smooth * has_anchor * (torso_relative(pts) - problem.anchor[:, :, :3]).pow(2).sum(
                (1, 2)
            )  # continues the track
            out_betas = betas + (shape.float() if shape is not None else 0.0)
            return rot.float(), trans.float(), out_betas, cost.float()

    @staticmethod
    def _data_r2(problem: FitProblem, pts: torch.Tensor) -> torch.Tensor:
        """(N, 17) squared distances of the (N, 17, 3) camera-frame keypoints ``pts`` to the detector's, in units of the height."""
        uv = project(pts, problem.focal_px, problem.center[None])
        return ((uv - problem.kp[..., :2]) / problem.heights[:, None, None]).pow(2).sum(-1)

    def _trust(self, points: torch.Tensor, kp: torch.Tensor, conf: torch.Tensor, heights: torch.Tensor, focal_px: float,
               center_px: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """(B,) how far to trust the network's pose: ``min(1, (trust_shape / d)^2)`` where ``d`` is how far its
        keypoints are from the detector's in shape (after the best 2D similarity: position, size and
        in-plane turn do not count; units of the height). A network that reads the person (synthetic
        crops: d ~0.03-0.05) keeps the full prior; one that does not (real photos: d ~0.11) a weaker one."""
        cfg = self.config
        if cfg.trust_shape <= 0:
            return torch.ones(len(points), device=points.device)
        with torch.no_grad():
            uv = project(points, focal_px, center_px)
            w = conf / conf.sum(1, keepdim=True).clamp_min(1e-6)
            a = torch.complex(uv[..., 0], uv[..., 1])
            b = torch.complex(kp[..., 0], kp[..., 1])
            a = a - (w * a).sum(1, keepdim=True)
            b = b - (w * b).sum(1, keepdim=True)
            z = (w * a.conj() * b).sum(1, keepdim=True) / (w * a.abs() ** 2).sum(1, keepdim=True).clamp_min(1e-9)
            d = (w * (z * a - b).abs()).sum(1) / heights
        return ((cfg.trust_shape / d.clamp_min(1e-6)) ** 2).clamp(0.04, 1.0)

    @staticmethod
    def _residual(points: torch.Tensor, kp: torch.Tensor, conf: torch.Tensor, focal_px: float, center_px: torch.Tensor) -> torch.Tensor:
        """(B,) mean pixel distance of (B, 17, 3) camera-frame ``points`` to the confident keypoints (NaN for people without any)."""
        d = (project(points, focal_px, center_px) - kp[..., :2]).norm(dim=-1)
        used = conf > 0
        total = (d * used).sum(1)
        count = used.sum(1)
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))
