"""The moderngl overlay path agrees with the torch rasteriser on silhouettes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrpose import render_gl
from lrpose.body import load_body
from lrpose.render import project_to_screen, rasterize, render_overlay

pytestmark = pytest.mark.skipif(not render_gl.available(), reason=f"no headless OpenGL: {render_gl.unavailable_reason()}")


def test_gl_and_torch_silhouettes_match():
    body = load_body()
    pose = torch.zeros(2, 72)
    pose[:, :3] = torch.tensor([3.1416, 0.3, 0.0])
    pose[1, 16 * 3 + 2] = -1.0
    with torch.no_grad():
        v = body.forward_axis_angle(pose).vertices
    trans = torch.tensor([[0.4, 0.3, 6.0], [-0.6, 0.1, 8.0]])
    w, h = 320, 240
    screen = project_to_screen(v, trans, 400.0, torch.tensor([[w / 2 - 0.5, h / 2 - 0.5]]).expand(2, 2))
    faces = torch.cat([body.faces, body.faces + v.shape[1]])
    flat = screen.reshape(-1, 3)
    mask_torch = rasterize(flat[None], faces, h, w).mask[0].numpy()
    _, mask_gl = render_gl.draw((v + trans[:, None]).numpy(), body.faces.numpy(), np.ones((2, 3)), 400.0, w, h)
    iou = (mask_torch & mask_gl).sum() / (mask_torch | mask_gl).sum()
    assert mask_torch.sum() > 2000
    assert iou > 0.99, iou


def test_overlay_backends_draw_the_same_pixels():
    body = load_body()
    pose = torch.zeros(1, 72)
    pose[0, 0] = 3.1416
    with torch.no_grad():
        v = body.forward_axis_angle(pose).vertices
    img = np.zeros((120, 160, 3), np.uint8)
    a = render_overlay(img, v, body.faces, torch.tensor([[0.0, 0.2, 8.0]]), 300.0, backend="gl")
    b = render_overlay(img, v, body.faces, torch.tensor([[0.0, 0.2, 8.0]]), 300.0, backend="torch")
    drawn_a, drawn_b = a.sum(-1) > 0, b.sum(-1) > 0
    assert (drawn_a & drawn_b).sum() / (drawn_a | drawn_b).sum() > 0.98
