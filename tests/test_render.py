"""Rasteriser against analytic cases; differentiable shading and texturing."""

from __future__ import annotations

import torch

from lrpose import render
from lrpose.render import interpolate, rasterize, sample_texture, shade

TRI = torch.tensor([[[0.0, 0.0, 1.0], [10.0, 0.0, 1.0], [0.0, 10.0, 1.0]]])
FACE = torch.tensor([[0, 1, 2]])


def test_triangle_coverage_is_analytic():
    frags = rasterize(TRI, FACE, 16, 16)
    # pixel centres (x, y) with x, y >= 0 and x + y <= 10: sum_{x=0}^{10} (11 - x) = 66
    assert int(frags.mask.sum()) == 66
    ys, xs = torch.nonzero(frags.mask[0], as_tuple=True)
    assert bool(((xs + ys) <= 10).all())
    assert torch.isinf(frags.depth[~frags.mask]).all()


def test_barycentrics_sum_to_one_and_reproduce_position():
    frags = rasterize(TRI, FACE, 16, 16)
    bary = frags.bary[frags.mask]
    torch.testing.assert_close(bary.sum(-1), torch.ones(bary.shape[0]))
    pos = interpolate(frags, FACE, TRI[0, :, :2])[frags.mask]
    ys, xs = torch.nonzero(frags.mask[0], as_tuple=True)
    torch.testing.assert_close(pos, torch.stack([xs, ys], -1).float(), atol=1e-5, rtol=0)


def test_z_order_two_overlapping_triangles():
    near = TRI.clone()
    far = TRI.clone() + torch.tensor([2.0, 2.0, 1.0])  # shifted, and 1 further away
    verts = torch.cat([far, near], 1)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = rasterize(verts, faces, 16, 16)
    assert frags.face_index[0, 3, 3] == 1  # covered by both: the near one wins
    assert frags.face_index[0, 11, 2] == 0  # only the far one
    verts_swapped = torch.cat([near, far], 1)
    assert rasterize(verts_swapped, faces, 16, 16).face_index[0, 3, 3] == 0


def test_perspective_correct_barycentrics():
    # a triangle slanted in depth: screen-space midpoint of an edge is not the 3D midpoint
    verts = torch.tensor([[[0.0, 0.0, 1.0], [20.0, 0.0, 3.0], [0.0, 20.0, 1.0]]])
    frags = rasterize(verts, FACE, 24, 24, perspective=True)
    b = frags.bary[0, 0, 10]
    # x = 10 on the edge between z=1 and z=3: perspective weight of vertex 1 is (0.5/3)/(0.5/1+0.5/3) = 0.25
    torch.testing.assert_close(b[1], torch.tensor(0.25), atol=1e-6, rtol=0)
    torch.testing.assert_close(frags.depth[0, 0, 10], torch.tensor(1.5), atol=1e-6, rtol=0)


def test_chunked_rasterisation_matches(monkeypatch):
    verts = torch.rand(1, 300, 3) * torch.tensor([40.0, 40.0, 1.0]) + torch.tensor([0.0, 0.0, 1.0])
    faces = torch.randint(0, 300, (200, 3))
    full = rasterize(verts, faces, 40, 40)
    monkeypatch.setattr(render, "_MAX_PAIRS", 500)
    chunked = rasterize(verts, faces, 40, 40)
    assert torch.equal(full.face_index, chunked.face_index)
    torch.testing.assert_close(full.bary, chunked.bary)


def test_texture_gradient_matches_finite_differences():
    verts = torch.tensor([[[0.0, 0.0, 1.0], [7.0, 0.0, 1.0], [0.0, 7.0, 1.0]]], dtype=torch.float64)
    uv = torch.tensor([[0.1, 0.2], [0.9, 0.3], [0.2, 0.8]], dtype=torch.float64)
    frags = rasterize(verts, FACE, 8, 8)
    tex = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(1, 8, 8, 3, dtype=torch.float64)

    def f(t):
        return (sample_texture(frags, uv, FACE, t) * weights).sum()

    assert torch.autograd.gradcheck(f, (tex,))
    f(tex).backward()
    assert tex.grad.abs().sum() > 0


def test_shade_is_zero_on_background_and_lit_on_mesh():
    frags = rasterize(TRI, FACE, 16, 16)
    rgb = shade(frags, TRI, FACE, torch.tensor([1.0, 0.5, 0.25]))
    assert rgb.shape == (1, 16, 16, 3)
    assert rgb[~frags.mask].abs().max() == 0
    torch.testing.assert_close(rgb[0, 2, 2], torch.tensor([1.0, 0.5, 0.25]))  # facing the camera: full light
