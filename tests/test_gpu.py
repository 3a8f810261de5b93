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


def test_pipeline_on_cuda_matches_cpu():
    """Every stage with a device (RSC-Net, GRU, keypoint fit, carry, body) on CUDA: the same people and frames as
    on the CPU, and 2D joints within a pixel (float rounding may end a Levenberg-Marquardt step elsewhere)."""
    import numpy as np

    from tests.test_pipeline import _every_stage

    cpu, cuda = _every_stage(torch.device("cpu")), _every_stage(torch.device("cuda"))
    assert cpu.keys() == cuda.keys()
    refined = [k for k in cpu if k.endswith("/refined")]
    assert np.mean([bool(cpu[k]) == bool(cuda[k]) for k in refined]) >= 0.9
    joints = np.array([np.abs(cpu[k] - cuda[k]).max() for k in cpu if k.endswith("/joints2d")])
    assert np.median(joints) < 0.5 and np.all(np.isfinite(joints))
    feats = [k for k in cpu if k.endswith("/features")]
    torch.testing.assert_close(torch.from_numpy(np.stack([cuda[k] for k in feats])), torch.from_numpy(np.stack([cpu[k] for k in feats])),
                               atol=1e-3, rtol=1e-3)  # fmt: skip


def test_yolo_torch_runtime_on_cuda_matches_cpu():
    import numpy as np

    from lrpose import assets, yolo_runtime
    from lrpose.detect import YoloDetector
    from tests.test_detect_runtime import _frame

    if not yolo_runtime.yolo_available() or assets.locate("detector").path is None:
        pytest.skip("needs ultralytics and the YOLO weights (bash tools/install-yolo.sh)")
    image, weights = _frame(), assets.locate("detector").path
    ref = YoloDetector(weights, det_size=640, runtime="torch")(image, 0)
    det = YoloDetector(weights, det_size=640, runtime="auto", device=torch.device("cuda"))
    got = det(image, 0)
    assert det.runtime == "torch" and len(got.boxes_xyxy) == len(ref.boxes_xyxy) >= 4
    assert np.abs(got.boxes_xyxy - ref.boxes_xyxy).max() < 1.0 and np.abs(got.keypoints[..., :2] - ref.keypoints[..., :2]).max() < 1.0
