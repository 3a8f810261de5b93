"""``lrpose eval``: MPJPE / PA-MPJPE / PVE of checkpoints at chosen person resolutions (Table 6 style).

Protocol (SPIN/VIBE): 14 LSP joints from the body's H36M-17 regressor, aligned at the pelvis
(midpoint of the hips); PA-MPJPE after a per-sample similarity Procrustes; PVE on the mesh
vertices without translation. Ground truth comes from the SMPL parameters when a sample has
them (regressed with the same body model), else from its 3D keypoints ``S``. Each resolution
r degrades the 224 px crop exactly as training does (area down to r px, bicubic up to the
network size) and uses the range that r selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lrpose.body import BodyModel
from lrpose.crops import normalize
from lrpose.metrics import MeanMetric, mpjpe, pa_mpjpe, pelvis_align, pve
from lrpose.models.rscnet import RSCNet
from lrpose.resolution import degrade, select_range


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one checkpoint at one resolution (mm)."""

    resolution: int
    mpjpe: float
    pa_mpjpe: float
    pve: float
    samples: int


@torch.no_grad()
def evaluate(
    model: RSCNet,
    body: BodyModel,
    data: Dataset,
    resolutions: list[int],
    batch_size: int = 32,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EvalResult]:
    """Evaluate ``model`` on ``data`` at each of ``resolutions`` (person crop side in px)."""
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    metrics = {r: (MeanMetric(mpjpe), MeanMetric(pa_mpjpe), MeanMetric(pve)) for r in resolutions}
    for start in range(0, n, batch_size):
        samples = [data[i] for i in range(start, min(n, start + batch_size))]
        gt_lsp, gt_verts, has_smpl = _ground_truth(body, samples)
        for r in resolutions:
            x = torch.stack([normalize(degrade(s.image, r, model.config.input_size)) for s in samples])
            out = model(x, select_range(r))
            posed = body(out.rotmats[:, 1:], out.rotmats[:, 0], out.betas)
            pred = pelvis_align(body.lsp_joints(posed.vertices))
            m_mpjpe, m_pa, m_pve = metrics[r]
            m_mpjpe.update(pred, gt_lsp)
            m_pa.update(pred, gt_lsp)
            if bool(has_smpl.any()):
                m_pve.update(posed.vertices[has_smpl], gt_verts[has_smpl])
        if progress:
            progress(min(n, start + batch_size), n)
    return [EvalResult(r, *(m.compute() for m in metrics[r]), n) for r in resolutions]


def _ground_truth(body: BodyModel, samples: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    has_smpl = torch.tensor([s.has_smpl > 0 for s in samples])
    pose = torch.from_numpy(np.stack([s.pose for s in samples])).float()
    betas = torch.from_numpy(np.stack([s.betas for s in samples])).float()
    out = body.forward_axis_angle(pose, betas)
    lsp = body.lsp_joints(out.vertices)
    from_s = torch.from_numpy(np.stack([s.S[:14, :3] for s in samples])).float()
    gt = torch.where(has_smpl[:, None, None], lsp, from_s)
    return pelvis_align(gt), out.vertices, has_smpl
