"""Which way a person faces, from keypoints and from a body; the refiner follows clear keypoints."""

from __future__ import annotations

import math

import torch

from lrpose.body import load_body
from lrpose.facing import body_faces_camera, keypoint_facing, turn_around
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.keypoint_skin import KeypointSkinner, project
from lrpose.refine import RefineConfig, Refiner

F = 5000 / 224 * 640
C = torch.tensor([319.5, 239.5])


def _frontal_and_back() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotations of a body facing the camera and turned away, and their (2, 17, 2) projected keypoints."""
    body = load_body()
    pose = torch.zeros(2, 24, 3)
    pose[:, 0] = torch.tensor([math.pi, 0.0, 0.0])
    rot = axis_angle_to_rotmat(pose)
    rot[1] = turn_around(rot[1:])[0]
    uv = project(KeypointSkinner(body, torch.zeros(2, 10))(rot, torch.tensor([[0.0, 0.0, 240.0]]).repeat(2, 1)), F, C)
    return rot, uv, (uv[..., 1].amax(1) - uv[..., 1].amin(1))


def test_keypoint_facing_sign_size_and_rotation_invariance():
    rot, uv, h = _frontal_and_back()
    conf = torch.ones(2, 17)
    e = keypoint_facing(uv, conf, h)
    assert 0.08 < float(e[0]) < 0.3 and abs(float(e[0] + e[1])) < 1e-3  # frontal ~ +0.17 h; turned: the opposite
    lying = torch.stack([-(uv[..., 1] - 240), uv[..., 0] - 320], -1)  # the image turned 90 degrees
    assert torch.allclose(keypoint_facing(lying, conf, h), e, atol=1e-4)
    mirrored = uv * torch.tensor([-1.0, 1.0])  # a mirror swaps which side is on the left
    assert torch.allclose(keypoint_facing(mirrored, conf, h), -e, atol=1e-4)
    assert float(keypoint_facing(uv, torch.zeros(2, 17), h).abs().max()) == 0.0  # nothing seen: no evidence
    assert body_faces_camera(rot[:, 0]).tolist() == [True, False]


def test_clear_keypoints_decide_the_facing_over_the_track_history():
    """The track's previous frame faced away (strong temporal term); the keypoints clearly face the
    camera: with the facing term the fit turns round, without it the history wins."""
    body = load_body()
    rot, uv, h = _frontal_and_back()
    trans = torch.tensor([[0.0, 0.0, 240.0]])
    kp = torch.cat([uv[:1], torch.full((1, 17, 1), 0.9)], -1)
    skin = KeypointSkinner(body, torch.zeros(1, 10))
    pts = skin(rot[1:], trans)
    anchor = torch.cat([pts - pts[:, [5, 6, 11, 12]].mean(1, keepdim=True), torch.full((1, 17, 1), 240.0)], 2)
    args = (rot[1:], torch.zeros(1, 10), trans, kp, h[:1], F, C, torch.tensor([-1]), anchor)
    with_term = Refiner(body, RefineConfig(iters=5, smooth=2.0)).fit(*args)
    without = Refiner(body, RefineConfig(iters=5, smooth=2.0, facing=0.0)).fit(*args)
    assert body_faces_camera(with_term.rotmats[:, 0]).tolist() == [True]
    assert body_faces_camera(without.rotmats[:, 0]).tolist() == [False]
