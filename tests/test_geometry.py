"""Geometry: smoke, batch, round trip (1e-5), known values and gradcheck for each function."""

from __future__ import annotations

import math

import pytest
import torch

from lrpose import geometry as g

torch.manual_seed(0)


def random_rotmats(n: int, dtype=torch.float64) -> torch.Tensor:
    return g.axis_angle_to_rotmat(torch.randn(n, 3, dtype=dtype))


def test_rot6d_spin_layout_is_first_two_columns():
    r = random_rotmats(4)
    six = g.rotmat_to_rot6d(r)
    assert six.shape == (4, 6)
    # SPIN decodes with x.view(-1, 3, 2): the 3x2 block is R's first two columns
    torch.testing.assert_close(six.view(-1, 3, 2), r[:, :, :2])


def test_rot6d_round_trip_and_orthonormal():
    x = torch.randn(7, 5, 6, dtype=torch.float64)
    r = g.rot6d_to_rotmat(x)
    assert r.shape == (7, 5, 3, 3)
    torch.testing.assert_close(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(7, 5, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, 5, dtype=torch.float64))
    assert (g.rot6d_to_rotmat(g.rotmat_to_rot6d(r)) - r).abs().max() < 1e-5


def test_axis_angle_known_value_and_zero():
    r = g.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2]))
    torch.testing.assert_close(r @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(g.axis_angle_to_rotmat(torch.zeros(2, 3)), torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_round_trip_including_pi_and_tiny(dtype):
    aa = torch.randn(500, 3, dtype=dtype) * 1.2
    aa = torch.cat([aa, torch.tensor([[math.pi - 1e-7, 0, 0], [0, 0, 1e-9], [0.0, 0.0, 0.0]], dtype=dtype)])
    r = g.axis_angle_to_rotmat(aa)
    back = g.rotmat_to_axis_angle(r)
    assert back.shape == aa.shape
    assert (g.axis_angle_to_rotmat(back) - r).abs().max() < 1e-5
    small = aa.norm(dim=-1) < 3.0  # away from pi the vector itself is unique
    assert (back[small] - aa[small]).abs().max() < 1e-5


def test_quaternion_is_unit_with_nonnegative_w():
    q = g.rotmat_to_quaternion(random_rotmats(100))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(100, dtype=torch.float64))
    assert (q[:, 0] >= 0).all()


def test_gradcheck_rotations():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(g.rot6d_to_rotmat, (x,))
    aa = (torch.randn(3, 3, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(g.axis_angle_to_rotmat, (aa,))
    aa0 = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)  # Taylor branch
    assert torch.autograd.gradcheck(g.axis_angle_to_rotmat, (aa0,))


def test_weak_perspective_known_value():
    pts = torch.tensor([[[1.0, 2.0, 5.0]]])
    cam = torch.tensor([[0.5, 0.2, -0.4]])
    torch.testing.assert_close(g.weak_perspective_project(pts, cam), torch.tensor([[[0.6, 0.8]]]))


def test_perspective_project_known_value_and_gradcheck():
    pts = torch.tensor([[[0.1, -0.2, 0.0]]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0, 10.0]], dtype=torch.float64)
    c = torch.tensor([[320.0, 240.0]], dtype=torch.float64)
    torch.testing.assert_close(g.perspective_project(pts, t, 1000.0, c), torch.tensor([[[330.0, 220.0]]], dtype=torch.float64))
    rot = random_rotmats(2)
    p = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor([[0.1, 0.2, 8.0], [0.0, -0.1, 6.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: g.perspective_project(a, b, 500.0, c.expand(2, 2), rot), (p, tt))


def test_crop_cam_to_translation_spin():
    t = g.crop_cam_to_translation(torch.tensor([[0.8, 0.1, -0.2]]))
    torch.testing.assert_close(t, torch.tensor([[0.1, -0.2, 2 * 5000 / (224 * 0.8)]]))


def test_cam_crop_to_full_matches_crop_projection_for_planar_points():
    """For points at depth 0 the full-frame perspective projection equals the crop's weak perspective."""
    b = 3
    pts = torch.cat([torch.randn(b, 10, 2, dtype=torch.float64) * 0.5, torch.zeros(b, 10, 1, dtype=torch.float64)], -1)
    cam = torch.tensor([[0.9, 0.1, -0.05], [0.5, -0.2, 0.3], [1.2, 0.0, 0.0]], dtype=torch.float64)
    center = torch.tensor([[100.0, 300.0], [500.0, 80.0], [320.0, 240.0]], dtype=torch.float64)
    size = torch.tensor([60.0, 30.0, 200.0], dtype=torch.float64)
    img = torch.tensor([[640.0, 480.0]], dtype=torch.float64).expand(b, 2)
    focal = torch.full((b,), 800.0, dtype=torch.float64)
    trans = g.cam_crop_to_full(cam, center, size, img, focal)
    full = g.perspective_project(pts, trans, focal, img / 2)
    via_crop = center[:, None] + g.weak_perspective_project(pts, cam) * size[:, None, None] / 2
    torch.testing.assert_close(full, via_crop)


def test_procrustes_recovers_similarity_and_refuses_reflection():
    s = torch.randn(4, 14, 3, dtype=torch.float64)
    r = random_rotmats(4)
    t = 2.5 * s @ r.transpose(1, 2) + torch.randn(4, 1, 3, dtype=torch.float64)
    aligned = g.similarity_procrustes(t, s)
    assert (aligned - s).abs().max() < 1e-10
    mirrored = s * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert (g.similarity_procrustes(mirrored, s) - s).norm(dim=-1).mean() > 0.1


def test_procrustes_gradcheck():
    src = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(2, 6, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: g.similarity_procrustes(a, tgt), (src,))
