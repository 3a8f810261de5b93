"""``lrpose eval``: MPJPE / PA-MPJPE / PVE of checkpoints at chosen person resolutions (Table 6 style),
and the runs behind ``--task temporal`` (per-frame vs GRU, Table 3 style) and ``--task texture``.

Protocol (SPIN/VIBE): 14 LSP joints from the body's H36M-17 regressor, aligned at the pelvis
(midpoint of the hips); PA-MPJPE after a per-sample similarity Procrustes; PVE on the mesh
vertices without translation. Ground truth comes from the SMPL parameters when a sample has
them (regressed with the same body model), else from its 3D keypoints ``S``. Each resolution
r degrades the 224 px crop exactly as training does (area down to r px, bicubic up to the
network size) and uses the range that r selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

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


def parse_resolutions(text: str) -> list[int]:
    """``--resolutions`` text ``224,176,96`` -> person crop sides in px (InputError when malformed)."""
    from lrpose.errors import InputError

    try:
        sides = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--resolutions must be comma-separated integers, got '{text}'") from None
    if not sides or min(sides) < 1:
        raise InputError("--resolutions needs at least one positive size")
    return sides


@dataclass(frozen=True)
class CheckpointEval:
    """One checkpoint's metrics at each resolution."""

    path: Path
    trained: bool
    results: list[EvalResult]

    def records(self) -> list[dict]:
        """One flat row per resolution (JSON/CSV)."""
        return [{"checkpoint": str(self.path), **asdict(r)} for r in self.results]


def evaluate_checkpoints(
    paths: list[Path], body: BodyModel, data: Dataset, resolutions: list[int], limit: int | None = None
) -> list[CheckpointEval]:
    """``evaluate`` each RSC-Net checkpoint (lrpose, official or SPIN) in ``paths``."""
    from lrpose.models.checkpoint import load_rscnet

    rows = []
    for path in paths:
        model, info = load_rscnet(path)
        rows.append(CheckpointEval(Path(path), info.trained, evaluate(model, body, data, resolutions, limit=limit)))
    return rows


def evaluate_temporal_run(
    data: Path, rscnet_path: Path, temporal_path: Path, body: BodyModel, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, float]]:
    """Per-frame RSC-Net vs the temporal module on the clips (or features ``.npz``) in ``data``:
    ``{"per-frame (RSC-Net)": metrics, "temporal (GRU)": metrics}`` (mm; accel in mm/frame^2)."""
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import load_rscnet, load_temporal, temporal_mismatch
    from lrpose.training.sequences import features_for
    from lrpose.training.temporal import evaluate_temporal

    model, info = load_rscnet(rscnet_path)
    module, tinfo = load_temporal(temporal_path)
    why = temporal_mismatch(module, tinfo, model, info)
    if why is not None:
        raise InputError(why)
    seqs, _ = features_for(data, model, info.checkpoint_id, None, seed=1, progress=progress)
    return {
        "per-frame (RSC-Net)": evaluate_temporal(None, model, body, seqs),
        "temporal (GRU)": evaluate_temporal(module, model, body, seqs),
    }


def evaluate_texture_checkpoints(
    paths: list[Path], body: BodyModel, data: Path, low_res: int = 32, limit: int | None = None, reid_weights: Path | None = None
) -> list[dict]:
    """UV L1, render L1 (and ReID distance with ``reid_weights``) of each texture checkpoint on the
    synthetic crops in ``data``; one record per checkpoint."""
    from lrpose.models.checkpoint import load_texture
    from lrpose.training.texture import ReIDFeatures, TextureCrops, evaluate_texture

    dataset = TextureCrops(data)
    reid = ReIDFeatures(reid_weights) if reid_weights else None
    records = []
    for path in paths:
        net, _ = load_texture(path)
        records.append({"checkpoint": str(path), **evaluate_texture(net, body, dataset, low_res=low_res, limit=limit, reid=reid)})
    return records
