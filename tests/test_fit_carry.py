"""The keypoint fit's change carried to frames between detector runs (``lrpose.fit_carry``)."""

from __future__ import annotations

import torch

from lrpose.fit_carry import FitCarry
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle


def _rot(seed: int, n: int, size: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_rotmat(size * torch.randn(n, 24, 3, generator=g))


def test_fits_changes_are_held_after_and_interpolated_between_fits():
    # rows: track 7 fitted (frame 0), track 8 keypoints but not fitted, track 7 no keypoints (frames 1, 3), track 7 fitted (frame 2)
    ids, frames = [7, 8, 7, 7, 7], [0, 0, 1, 2, 3]
    fitted, none = torch.tensor([True, False, False, True, False]), torch.tensor([False, False, True, False, True])
    net = _rot(0, 5)
    net[:, 0] = net[0, 0]  # one person walking on: the root keeps its direction
    axis = torch.zeros(24, 3)
    axis[:, 0] = 0.2  # the first fit turns every joint 0.2 rad about x, the second 0.4 rad
    fit = net.clone()
    fit[0], fit[3] = net[0] @ axis_angle_to_rotmat(axis), net[3] @ axis_angle_to_rotmat(2 * axis)
    net_cam = torch.tensor([[1.0, 0.0, 0.0]]).repeat(5, 1)
    cam = net_cam.clone()
    cam[0], cam[3] = torch.tensor([2.0, 0.1, 0.0]), torch.tensor([8.0, 0.3, 0.0])  # scale x2 then x8, shift 0.1 then 0.3
    carry = FitCarry()
    rot, out_cam, carried = carry.run(ids, frames, fitted, none, net, fit, net_cam, cam)
    assert carried.tolist() == [False, False, True, False, True]
    assert torch.allclose(rot[0], fit[0]) and torch.allclose(rot[3], fit[3]) and torch.equal(rot[1], net[1])
    halfway = fit[0] @ axis_angle_to_rotmat(0.5 * rotmat_to_axis_angle(fit[0].transpose(-1, -2) @ fit[3]))
    assert torch.allclose(rot[2], halfway, atol=1e-5)  # frame 1: halfway between the two fits
    turn = rotmat_to_axis_angle(rot[2].transpose(-1, -2) @ fit[0]).norm(dim=-1)
    assert torch.allclose(turn, rotmat_to_axis_angle(rot[2].transpose(-1, -2) @ fit[3]).norm(dim=-1), atol=1e-4)  # as far from each
    assert torch.allclose(out_cam[2], torch.tensor([4.0, 0.2, 0.0]), atol=1e-5)  # scale halfway in log: x4
    assert torch.allclose(rot[4], net[4] @ axis_angle_to_rotmat(2 * axis), atol=1e-5)  # frame 3: the last fit's change held
    assert torch.allclose(out_cam[4], torch.tensor([8.0, 0.3, 0.0]), atol=1e-5)
    # the next batch: track 7 without keypoints keeps the last change; track 8 was never fitted
    rot2, _, carried2 = carry.run([7, 8], [4, 4], torch.tensor([False, False]), torch.tensor([True, True]), net[:2], net[:2], net_cam[:2],
                                  net_cam[:2])  # fmt: skip
    assert carried2.tolist() == [True, False] and torch.allclose(rot2[0], net[0] @ axis_angle_to_rotmat(2 * axis), atol=1e-5)
    carry.run([8], [5], torch.tensor([False]), torch.tensor([True]), net[:1], net[:1], net_cam[:1], net_cam[:1])
    assert carry.corrections == {}  # track 7 ended: forgotten


def test_an_unfitted_frame_with_keypoints_ends_the_carry_and_a_turn_is_not_interpolated():
    net = _rot(2, 4)
    fit = net.clone()
    axis = torch.zeros(24, 3)
    axis[:, 2] = 0.3
    fit[0] = net[0] @ axis_angle_to_rotmat(axis)
    cam = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1)
    carry = FitCarry()
    # track 3: fitted at frame 0, keypoints but too small at frame 2 (not fitted): frames 1 and 3 get nothing after it
    rot, _, carried = carry.run([3, 3, 3, 3], [0, 1, 2, 3], torch.tensor([True, False, False, False]),
                                torch.tensor([False, True, False, True]), net, fit, cam, cam)  # fmt: skip
    assert carried.tolist() == [False, True, False, False] and torch.allclose(rot[1], net[1] @ axis_angle_to_rotmat(axis), atol=1e-5)
    assert carry.corrections == {}
    # fits at frames 0 and 2 facing opposite ways: frame 1 holds the first fit's change instead of a side-on body
    turned = fit.clone()
    turned[2, 0] = fit[2, 0] @ torch.diag(torch.tensor([-1.0, 1.0, -1.0]))
    turned[0] = fit[0]
    rot, _, carried = FitCarry().run([3, 3, 3], [0, 1, 2], torch.tensor([True, False, True]), torch.tensor([False, True, False]), net[:3],
                                     turned[:3], cam[:3], cam[:3])  # fmt: skip
    assert carried.tolist() == [False, True, False] and torch.allclose(rot[1], net[1] @ axis_angle_to_rotmat(axis), atol=1e-5)
