"""OBJ + MTL + PNG export loads back in trimesh with its texture."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from lrpose.body import load_body
from lrpose.results import save_obj


def test_textured_obj_round_trip(tmp_path):
    body = load_body()
    with torch.no_grad():
        v = body.forward_axis_angle(torch.zeros(1, 72)).vertices[0].numpy()
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[:, :32] = (255, 0, 0)
    files = save_obj(tmp_path / "person.obj", v, body.faces.numpy(), body.uv.numpy(), body.uv_faces.numpy(), tex)
    assert [f.name for f in files] == ["person.obj", "person.mtl", "person_texture.png"]
    assert "map_Kd person_texture.png" in (tmp_path / "person.mtl").read_text()
    mesh = trimesh.load(tmp_path / "person.obj", process=False, maintain_order=True)
    assert len(mesh.faces) == len(body.faces)
    # vertices may be split at UV seams: every loaded vertex is one of ours
    dist, _ = cKDTree(v).query(mesh.vertices)
    assert dist.max() < 1e-5
    img = np.asarray(mesh.visual.material.image.convert("RGB"))
    assert img.shape == (64, 64, 3) and (img[:, 0] == (255, 0, 0)).all()
    assert mesh.visual.uv.shape[0] == len(mesh.vertices)


def test_untextured_obj(tmp_path):
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    save_obj(tmp_path / "tri.obj", v, np.array([[0, 1, 2]]))
    mesh = trimesh.load(tmp_path / "tri.obj", process=False)
    np.testing.assert_allclose(mesh.vertices, v)
