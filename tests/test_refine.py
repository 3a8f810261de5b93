"""Keypoint-guided fitting: known answers, the turned start, robustness, batching, bad keypoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpose.body import COCO17_FLIP, load_body
from lrpose.facing import turn_around
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from lrpose.keypoint_skin import KeypointSkinner, project
from lrpose.refine import RefineConfig, Refiner

F = 5000 / 224 * 640
C = torch.tensor([319.5, 239.5])


@pytest.fixture(scope="module")
def scene():
    """Four people ~100 px tall with bent limbs, their exact COCO keypoints, and a perturbed start."""
    torch.manual_seed(0)
    body = load_body()
    b = 4
    pose = torch.zeros(b, 24, 3)
    pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0]) + torch.randn(b, 3) * torch.tensor([0.05, 0.6, 0.05])
    pose[:, 1:] = torch.randn(b, 23, 3) * 0.2
    pose[:, [4, 5], 0] = pose[:, [4, 5], 0].abs() + 0.2
    rot = axis_angle_to_rotmat(pose)
    betas, trans = torch.zeros(b, 10), torch.tensor([[4.0, 2.0, 240.0]]).repeat(b, 1)
    skin = KeypointSkinner(body, betas)
    uv = project(skin(rot, trans), F, C)
    kp = torch.cat([uv, torch.full((b, 17, 1), 0.9)], -1)
    heights = (uv[..., 1].amax(1) - uv[..., 1].amin(1)) * 1.15
    noisy = pose.clone()
    noisy[:, 1:] += torch.randn(b, 23, 3) * 0.25
    start = axis_angle_to_rotmat(noisy)
    return body, rot, betas, trans, kp, heights, start, skin


def kp3d_error_mm(skin, rot, trans, truth_rot, truth_trans) -> float:
    """Mean 3D keypoint error after aligning the hip centres (mm)."""
    a, b = skin(rot, trans), skin(truth_rot, truth_trans)
    a, b = a - a[:, 11:13].mean(1, keepdim=True), b - b[:, 11:13].mean(1, keepdim=True)
    return float((a - b).norm(dim=-1).mean()) * 1000


def test_known_answer_fit_recovers_the_pose(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    res = Refiner(body, RefineConfig(iters=10, prior=2e-3)).fit(start, betas, trans * torch.tensor([1.0, 1.0, 1.2]), kp, heights, F, C)
    assert bool(res.refined.all())
    assert float(res.residual_after.mean()) < 0.25 * float(res.residual_before.mean())
    assert float(res.residual_after.mean()) < 3.0  # px, people ~100 px tall
    before = kp3d_error_mm(skin, start, trans, rot, trans)
    assert kp3d_error_mm(skin, res.rotmats, res.trans, rot, trans) < 0.7 * before
    assert abs(float(res.trans[:, 2].mean()) - 240.0) < 36.0  # the depth comes back from the keypoints' size (15 %)


def test_turned_start_comes_back_facing_the_right_way(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    turned = turn_around(start)
    res = Refiner(body, RefineConfig(iters=10, prior=2e-3)).fit(turned, betas, trans, kp, heights, F, C)
    facing = lambda r: r[:, 0] @ torch.tensor([0.0, 0.0, 1.0])  # noqa: E731 - the body's forward axis in the camera frame
    assert bool(((facing(res.rotmats) * facing(rot)).sum(-1) > 0.5).all())
    no_flip = Refiner(body, RefineConfig(iters=10, prior=2e-3, flip=False)).fit(turned, betas, trans, kp, heights, F, C)
    assert float(no_flip.residual_after.mean()) > float(res.residual_after.mean())


def test_one_outlier_keypoint_does_not_pull_the_fit(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    clean = Refiner(body, RefineConfig(iters=10, prior=2e-3)).fit(start, betas, trans, kp, heights, F, C)
    bad = kp.clone()
    bad[:, 9, :2] += torch.tensor([80.0, -60.0])  # a left wrist ~ one body height away
    res = Refiner(body, RefineConfig(iters=10, prior=2e-3)).fit(start, betas, trans, bad, heights, F, C)
    moved = (project(skin(res.rotmats, res.trans), F, C) - project(skin(clean.rotmats, clean.trans), F, C)).norm(dim=-1)
    others = [k for k in range(17) if k not in (7, 9)]  # everything but the left arm stays put
    assert float(moved[:, others].mean()) < 1.5


def test_batched_equals_one_by_one(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    refiner = Refiner(body, RefineConfig(iters=5))
    together = refiner.fit(start, betas, trans, kp, heights, F, C)
    for i in range(len(start)):
        one = refiner.fit(start[i : i + 1], betas[i : i + 1], trans[i : i + 1], kp[i : i + 1], heights[i : i + 1], F, C)
        torch.testing.assert_close(one.rotmats[0], together.rotmats[i], atol=2e-3, rtol=1e-3)  # float32 solves
        torch.testing.assert_close(one.trans[0], together.trans[i], atol=1e-2, rtol=1e-3)


def test_temporal_term_reduces_jitter(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    t = 6  # one person standing still, keypoints with per-frame noise
    seq_kp = kp[:1].repeat(t, 1, 1)
    seq_kp[..., :2] += torch.randn(t, 17, 2, generator=torch.Generator().manual_seed(3)) * 2.5
    args = (start[:1].repeat(t, 1, 1, 1), betas[:1].repeat(t, 1), trans[:1].repeat(t, 1), seq_kp, heights[:1].repeat(t), F, C)
    previous = torch.arange(t) - 1

    def jitter(res) -> float:
        pts = skin.__class__(body, betas[:1].repeat(t, 1))(res.rotmats, res.trans)
        rel = pts - pts[:, [5, 6, 11, 12]].mean(1, keepdim=True)
        return float((rel[1:] - rel[:-1]).norm(dim=-1).mean())

    free = Refiner(body, RefineConfig(iters=5, smooth=0.0)).fit(*args, previous)
    smooth = Refiner(body, RefineConfig(iters=5, smooth=50.0)).fit(*args, previous)
    assert jitter(smooth) < 0.8 * jitter(free)


def test_absent_or_useless_keypoints_keep_the_network_result(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    bad = kp.clone()
    bad[0] = float("nan")  # no keypoints
    bad[1, :, 2] = 0.0  # zero confidence everywhere
    bad[2, :12, 2] = 0.0  # only 5 confident keypoints (fewer than min_keypoints)
    res = Refiner(body, RefineConfig(iters=5)).fit(start, betas, trans, bad, heights, F, C)
    assert res.refined.tolist() == [False, False, False, True]
    assert torch.equal(res.rotmats[:3], start[:3]) and torch.equal(res.trans[:3], trans[:3])
    assert torch.isfinite(res.rotmats).all() and torch.isfinite(res.trans).all()
    assert math.isnan(float(res.residual_before[0])) and math.isnan(float(res.residual_after[1]))


def test_coco_keypoints_of_both_bodies_mirror_left_and_right():
    body = load_body()
    out = body.forward_axis_angle(torch.zeros(1, 72))
    coco = torch.einsum("jv,bvi->bji", body.coco_regressor(), out.vertices)[0]
    mirrored = coco[list(COCO17_FLIP)] * torch.tensor([-1.0, 1.0, 1.0])
    assert float((mirrored - coco)[1:].norm(dim=-1).max()) < 0.02  # the stand-in is symmetric to ~1 cm
    assert float(coco[5, 0]) > 0 > float(coco[6, 0])  # body-left is +x
    assert float(coco[0, 2]) > float(coco[11:13, 2].mean())  # the nose is in front: the body faces +z
    np.testing.assert_array_less(coco[15:, 1].numpy(), coco[11:13, 1].numpy())  # ankles below hips


def test_people_below_min_height_keep_the_network_result(scene):
    body, rot, betas, trans, kp, heights, start, skin = scene
    res = Refiner(body, RefineConfig(iters=3, min_height=64.0)).fit(start, betas, trans, kp, torch.full_like(heights, 40.0), F, C)
    assert not bool(res.refined.any()) and torch.equal(res.rotmats, start)


def test_cli_default_min_height_is_the_config_default():
    from lrpose.cli import REFINE_MIN_HEIGHT

    assert RefineConfig().min_height == REFINE_MIN_HEIGHT


def test_a_network_that_does_not_read_the_person_gets_a_weaker_prior(scene):
    """Trust in the network's pose follows how well its keypoints match the detector's in shape: the
    true pose is fully trusted (d ~0), a pose far off is fitted much closer with the adaptive prior."""
    body, rot, betas, trans, kp, heights, start, skin = scene
    conf = kp[..., 2]
    refiner = Refiner(body, RefineConfig(iters=10, prior=0.5))
    assert torch.equal(refiner._trust(skin(rot, trans), kp, conf, heights, F, C), torch.ones(len(rot)))
    g = torch.Generator().manual_seed(5)
    off = axis_angle_to_rotmat(
        rotmat_to_axis_angle(rot) + torch.randn(rot.shape[:2] + (3,), generator=g) * 0.5 * (torch.arange(24) > 0)[:, None]
    )
    trust = refiner._trust(skin(off, trans), kp, conf, heights, F, C)
    assert float(trust.mean()) < 0.5
    fixed = Refiner(body, RefineConfig(iters=10, prior=0.5, trust_shape=0.0)).fit(off, betas, trans, kp, heights, F, C)
    adaptive = refiner.fit(off, betas, trans, kp, heights, F, C)
    assert float(adaptive.residual_after.mean()) < 0.7 * float(fixed.residual_after.mean())


def test_an_anchor_frames_away_weighs_as_the_temporal_term_over_the_gap_squared(scene):
    """The temporal term's residuals are divided by the frames since the anchor: a fit anchored 2 frames
    back is the fit with a quarter of the temporal weight; with no gaps given, one frame."""
    body, rot, betas, trans, kp, heights, start, skin = scene
    pts = skin(start, trans)
    anchor = torch.cat([pts - pts[:, [5, 6, 11, 12]].mean(1, keepdim=True), trans[:, None, 2:].expand(-1, 17, 1)], 2)
    args = (start, betas, trans, kp, heights, F, C, torch.full((len(start),), -1), anchor)
    far = Refiner(body, RefineConfig(iters=5, smooth=40.0)).fit(*args, gaps=torch.full((len(start),), 2.0))
    weaker = Refiner(body, RefineConfig(iters=5, smooth=10.0)).fit(*args)
    near = Refiner(body, RefineConfig(iters=5, smooth=40.0)).fit(*args)
    assert torch.allclose(far.rotmats, weaker.rotmats, atol=1e-4) and torch.allclose(far.trans, weaker.trans, atol=1e-3)
    assert not torch.allclose(far.rotmats, near.rotmats, atol=1e-3)
