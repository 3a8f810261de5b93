"""Opt-in GPU checks (``pytest -m gpu``): the renderer and RSC-Net give the same results on CUDA."""

from __future__ import annotations

import pytest
import torch

from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.render import rasterize, sample_texture
from tests.test_models import mean_params

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_rasterise_and_texture_on_cuda_match_cpu():
    verts = torch.rand(1, 200, 3) * torch.tensor([60.0, 60.0, 1.0]) + torch.tensor([0.0, 0.0, 1.0])
    faces = torch.randint(0, 200, (150, 3))
    uv = torch.rand(200, 2)
    tex = torch.rand(1, 3, 16, 16)
    cpu = rasterize(verts, faces, 64, 64)
    gpu = rasterize(verts.cuda(), faces.cuda(), 64, 64)
    assert torch.equal(cpu.face_index, gpu.face_index.cpu())
    a = sample_texture(cpu, uv, faces, tex)
    b = sample_texture(gpu, uv.cuda(), faces.cuda(), tex.cuda()).cpu()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_rscnet_on_cuda_matches_cpu():
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params()).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        a = net(x, torch.tensor([0, 1, 3, 4]))
        b = net.cuda()(x.cuda(), torch.tensor([0, 1, 3, 4]).cuda())
    torch.testing.assert_close(a.pose6d, b.pose6d.cpu(), atol=1e-3, rtol=1e-3)
