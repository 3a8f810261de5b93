"""``lrpose eval``: MPJPE / PA-MPJPE / PVE of checkpoints at chosen person resolutions (Table 6 style),
and the runs behind ``--task temporal`` (per-frame vs GRU, Table 3 style) and ``--task texture``.

Protocol (the official SPIN / RSC-Net ``eval.py`` by default): 14 LSP joints from the body's
H36M-17 regressor minus H36M joint 0 (``pelvis="h36m"``; ``"hips"`` subtracts the hips' midpoint
instead); PA-MPJPE after a per-sample similarity Procrustes (independent of the pelvis); PVE on
the mesh vertices without translation. Ground truth comes from the SMPL parameters when a sample
has them, else from its 3D keypoints ``S`` (SPIN's 24: LSP 14 first, pelvis at 14; a sample
without a pelvis keypoint is aligned at the hips, prediction and ground truth alike). SMPL ground
truth is posed with the male / female body of each sample when the data gives gender ('m'/'f',
3DPW) and ``gendered`` bodies are passed (``gendered_bodies``), else with the one body. Each
resolution r degrades the 224 px crop with ``resolution.degrade`` (``degrade_method`` "official":
Pillow bicubic down to r and back, as the official evaluation; "opencv": lrpose's training
degradation) and uses the range that r selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lrpose.body import H36M_TO_LSP14, BodyModel
from lrpose.crops import normalize
from lrpose.facing import body_faces_camera
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.metrics import PELVIS_MODES, MeanMetric, align_at, hip_midpoint, mpjpe, pa_mpjpe, pve
from lrpose.models.rscnet import RSCNet
from lrpose.resolution import DEGRADE_METHODS, degrade, select_range

GENDERS = {"m": "male", "f": "female"}
"""Gender codes of SPIN-format data (3DPW's ``gender`` array) -> SMPL body gender."""
S_PELVIS = 14
"""Index of the pelvis (H36M joint 0 for H36M data) in SPIN's 24 keypoints ``S``."""


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one checkpoint at one resolution (mm)."""

    resolution: int
    mpjpe: float
    pa_mpjpe: float
    pve: float
    samples: int
    facing: float = float("nan")
    """Share of the samples with SMPL ground truth whose body faces the camera exactly when the ground truth's
    does (``lrpose.facing.body_faces_camera`` of the global rotation); NaN without SMPL ground truth."""


@torch.no_grad()
def evaluate(
    model: RSCNet,
    body: BodyModel,
    data: Dataset,
    resolutions: list[int],
    batch_size: int = 32,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    pelvis: str = "h36m",
    degrade_method: str = "official",
    gendered: dict[str, BodyModel] | None = None,
) -> list[EvalResult]:
    """Evaluate ``model`` on ``data`` at each of ``resolutions`` (person crop side in px).

    ``pelvis`` one of ``PELVIS_MODES``, ``degrade_method`` one of ``DEGRADE_METHODS``, ``gendered``
    ``{"m": male body, "f": female body}`` for the ground truth of samples with a gender."""
    if pelvis not in PELVIS_MODES or degrade_method not in DEGRADE_METHODS:
        raise ValueError(f"pelvis must be one of {PELVIS_MODES} and degrade_method one of {DEGRADE_METHODS}")
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    metrics = {r: (MeanMetric(mpjpe), MeanMetric(pa_mpjpe), MeanMetric(pve)) for r in resolutions}
    agree = {r: [0, 0] for r in resolutions}  # facing agreements, samples with SMPL ground truth
    for start in range(0, n, batch_size):
        samples = [data[i] for i in range(start, min(n, start + batch_size))]
        gt_lsp, gt_verts, has_smpl, at_hips = _ground_truth(body, samples, pelvis, gendered)
        gt_front = body_faces_camera(axis_angle_to_rotmat(torch.from_numpy(np.stack([s.pose[:3] for s in samples])).float()))
        for r in resolutions:
            x = torch.stack([normalize(degrade(s.image, r, model.config.input_size, degrade_method)) for s in samples])
            out = model(x, select_range(r))
            posed = body(out.rotmats[:, 1:], out.rotmats[:, 0], out.betas)
            pred = eval_joints(body, posed.vertices, at_hips)
            m_mpjpe, m_pa, m_pve = metrics[r]
            m_mpjpe.update(pred, gt_lsp)
            m_pa.update(pred, gt_lsp)
            if bool(has_smpl.any()):
                m_pve.update(posed.vertices[has_smpl], gt_verts[has_smpl])
                agree[r][0] += int((body_faces_camera(out.rotmats[:, 0]) == gt_front)[has_smpl].sum())
                agree[r][1] += int(has_smpl.sum())
        if progress:
            progress(min(n, start + batch_size), n)
    facing = {r: agree[r][0] / agree[r][1] if agree[r][1] else float("nan") for r in resolutions}
    return [EvalResult(r, *(m.compute() for m in metrics[r]), n, facing[r]) for r in resolutions]


def eval_joints(body: BodyModel, vertices: torch.Tensor, at_hips: torch.Tensor) -> torch.Tensor:
    """(B, 14, 3) root-relative LSP joints (metres) of (B, V, 3) vertices: minus H36M joint 0, or
    minus the hips' midpoint where the (B,) bool ``at_hips`` is set."""
    h36m = body.h36m_joints(vertices)
    lsp = h36m[:, list(H36M_TO_LSP14)]
    return align_at(lsp, torch.where(at_hips[:, None], hip_midpoint(lsp), h36m[:, 0]))


def _ground_truth(
    body: BodyModel, samples: list, pelvis: str, gendered: dict[str, BodyModel] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(root-relative GT LSP joints (B, 14, 3), GT vertices (B, V, 3), has_smpl (B,), at_hips (B,))."""
    has_smpl = torch.tensor([s.has_smpl > 0 for s in samples])
    pose = torch.from_numpy(np.stack([s.pose for s in samples])).float()
    betas = torch.from_numpy(np.stack([s.betas for s in samples])).float()
    vertices = body.forward_axis_angle(pose, betas).vertices
    for code, gendered_body in (gendered or {}).items():
        pick = torch.tensor([s.gender == code for s in samples])
        if bool(pick.any()):
            vertices[pick] = gendered_body.forward_axis_angle(pose[pick], betas[pick]).vertices
    s3 = torch.from_numpy(np.stack([s.S for s in samples])).float()
    at_hips = torch.full((len(samples),), pelvis == "hips")
    at_hips |= ~has_smpl & (s3[:, S_PELVIS, 3] <= 0)  # keypoint ground truth without a pelvis
    from_smpl = eval_joints(body, vertices, at_hips)
    from_s = align_at(s3[:, :14, :3], torch.where(at_hips[:, None], hip_midpoint(s3[:, :14, :3]), s3[:, S_PELVIS, :3]))
    return torch.where(has_smpl[:, None, None], from_smpl, from_s), vertices, has_smpl, at_hips


def gendered_bodies(body: BodyModel, smpl: Path | None) -> tuple[dict[str, BodyModel] | None, str]:
    """``({"m": male, "f": female}, "")`` when both gendered SMPL files are found where the neutral
    one is looked for (``smpl``: the user's SMPL file or folder, else ``$LRPOSE_SMPL_DIR``, else the
    usual search), else ``(None, why)``."""
    import os

    from lrpose import assets

    if body.name != "smpl":
        return None, "the body is the stand-in; gendered ground truth needs the real SMPL male and female files"
    named = smpl if smpl is not None else os.environ.get("LRPOSE_SMPL_DIR")
    place = Path(named).expanduser() if named else None
    if place is not None and place.is_file():
        place = place.parent  # --smpl names the neutral file: its gendered siblings sit beside it
    found = {g: assets.locate(f"smpl_{g}", place).path for g in GENDERS.values()}
    missing = [assets.SPECS[f"smpl_{g}"].filenames[0] for g, p in found.items() if p is None]
    if missing:
        return None, f"{' and '.join(missing)} (or the basicmodel_m/f names) not found beside the SMPL model"
    return {code: BodyModel.from_smpl_file(found[g], g) for code, g in GENDERS.items()}, ""


def data_has_gender(data: Dataset) -> bool:
    """Whether the dataset gives a male/female gender per sample (SPIN-format ``gender`` array)."""
    genders = getattr(data, "genders", None)
    return genders is not None and any(g in GENDERS for g in genders)


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
    protocol: dict[str, str]
    """``pelvis``, ``degrade`` and ``ground_truth_body`` ('gendered' or 'neutral') the numbers were made with."""

    def records(self) -> list[dict]:
        """One flat row per resolution (JSON/CSV)."""
        return [{"checkpoint": str(self.path), **asdict(r), **self.protocol} for r in self.results]


def evaluate_checkpoints(
    paths: list[Path],
    body: BodyModel,
    data: Dataset,
    resolutions: list[int],
    limit: int | None = None,
    pelvis: str = "h36m",
    degrade_method: str = "official",
    gendered: dict[str, BodyModel] | None = None,
) -> list[CheckpointEval]:
    """``evaluate`` each RSC-Net checkpoint (lrpose, official or SPIN) in ``paths``."""
    from lrpose.models.checkpoint import load_rscnet

    protocol = {"pelvis": pelvis, "degrade": degrade_method, "ground_truth_body": "gendered" if gendered else "neutral"}
    rows = []
    for path in paths:
        model, info = load_rscnet(path)
        results = evaluate(model, body, data, resolutions, limit=limit, pelvis=pelvis, degrade_method=degrade_method, gendered=gendered)
        rows.append(CheckpointEval(Path(path), info.trained, results, protocol))
    return rows


def evaluate_temporal_run(
    data: Path, rscnet_path: Path, temporal_path: Path, body: BodyModel, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, float]]:
    """Per-frame RSC-Net vs the temporal module on the clips (or features ``.npz``) in ``data``:
    ``{"per-frame (RSC-Net)": metrics, "temporal (GRU)": metrics}`` (mm; accel in mm/frame^2)."""
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import load_rscnet, load_temporal
    from lrpose.models.temporal_choice import temporal_mismatch
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
