"""``lrpose doctor``: where every asset was found (or looked for), and a body-model sanity check."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from lrpose import __version__, assets
from lrpose.body import SMPL_JOINT_NAMES, BodyModel
from lrpose.config import BodyConfig


@dataclass(frozen=True)
class AssetRow:
    """One row of the doctor table."""

    title: str
    status: str
    """'found', 'missing' (needed), or 'optional'."""
    where: str
    remedy: str


@dataclass(frozen=True)
class BodyCheck:
    """Result of posing the body that lrpose will use."""

    body_id: str
    num_vertices: int
    height_m: float
    symmetry_mm: float
    """Largest left/right mismatch of the 24 T-pose joints after mirroring x, in mm."""


def asset_rows(cfg: BodyConfig) -> list[AssetRow]:
    """Search every asset the way the commands will, without raising."""
    rows = []
    keys = [
        (f"smpl_{cfg.gender}", cfg.smpl, "optional"),
        ("standin_body", None, "missing"),
        ("standin_mean_params", None, "missing"),
        ("h36m_regressor", None, "optional"),
        ("smpl_mean_params", None, "optional"),
        ("rscnet", None, "optional"),
        ("temporal", None, "optional"),
        ("texture", None, "optional"),
        ("backbone_mobilenetv2", None, "optional"),
        ("detector", None, "optional"),
    ]
    for key, explicit, if_absent in keys:
        found = assets.locate(key, explicit)
        if found.path is not None:
            remedy = ""
            if key == "detector":
                from lrpose.detect import yolo_available

                if not yolo_available():
                    remedy = "ultralytics is not installed (README, 'YOLO detector'): lrpose video uses HOG"
            rows.append(AssetRow(found.spec.title, "found", f"{found.path} ({found.source})", remedy))
        else:
            strict = assets.is_strict(key, explicit)
            status = "missing" if strict else if_absent
            rows.append(AssetRow(found.spec.title, status, "searched: " + "; ".join(found.searched), found.spec.how_to_get))
    return rows


def body_check(body: BodyModel) -> BodyCheck:
    """Pose the body at zero pose and measure height and left/right symmetry."""
    with torch.no_grad():
        out = body.forward_axis_angle(torch.zeros(1, 72))
    v, j = out.vertices[0], out.joints[0]
    left = [i for i, n in enumerate(SMPL_JOINT_NAMES) if n.startswith("left_")]
    right = [SMPL_JOINT_NAMES.index(SMPL_JOINT_NAMES[i].replace("left_", "right_")) for i in left]
    mirrored = j[right] * torch.tensor([-1.0, 1.0, 1.0])
    sym = float((j[left] - mirrored).norm(dim=-1).max()) * 1000.0
    return BodyCheck(body.body_id, body.num_vertices, float(v[:, 1].max() - v[:, 1].min()), sym)


def environment() -> dict[str, str]:
    """Versions of the things lrpose runs on."""
    import av
    import cv2
    import smplx  # noqa: F401  (import check)

    return {
        "lrpose": __version__,
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads, cuda {'yes' if torch.cuda.is_available() else 'no'})",
        "opencv": f"{cv2.__version__} (HOG people detector {'yes' if hasattr(cv2, 'HOGDescriptor_getDefaultPeopleDetector') else 'no'})",
        "pyav": av.__version__,
        **_detector_runtime(),
    }


def _detector_runtime() -> dict[str, str]:
    """``{"YOLO runtime": ...}``: what ``--det-runtime auto`` would use here (nothing without ultralytics)."""
    from lrpose.yolo_runtime import describe, yolo_available

    return {"YOLO runtime (auto)": describe("auto")} if yolo_available() else {}


def provenance_lines(path: Path | None) -> list[str]:
    """What ``lrpose doctor`` says about how the RSC-Net checkpoint at ``path`` was made, when it
    was adapted to footage (``lrpose adapt``); [] otherwise or when it cannot be read."""
    from lrpose.errors import LrposeError
    from lrpose.models.checkpoint import checkpoint_meta

    if path is None:
        return []
    try:
        adapt = checkpoint_meta(path).get("adapt")
    except LrposeError:
        return []
    if not isinstance(adapt, dict):
        return []
    videos = adapt.get("videos", [])
    names = ", ".join(f"{v.get('name')} ({v.get('sha256_10')})" for v in videos[:4]) + (" ..." if len(videos) > 4 else "")
    held = adapt.get("heldout", {})
    b, a = held.get("before", {}), held.get("after", {})
    nan = float("nan")
    return [
        f"RSC-Net {path.name}: adapted by 'lrpose adapt' on {adapt.get('date', '?')} from {adapt.get('base_checkpoint', '?')}",
        f"  footage: {len(videos)} video(s): {names}; {adapt.get('labels', '?')} pseudo-labels, {adapt.get('steps', '?')} steps",
        f"  held-out ({b.get('n', '?')} person-frames, no refinement): keypoint error {b.get('kp_error', nan):.4f} -> "
        f"{a.get('kp_error', nan):.4f}, facing agreement {b.get('facing', nan):.3f} -> {a.get('facing', nan):.3f}",
        *_temporal_lines(adapt.get("temporal")),
    ]


def _temporal_lines(t: object) -> list[str]:
    """The temporal-module line of an adapted checkpoint's provenance (``lrpose adapt --temporal-steps``)."""
    if not isinstance(t, dict):
        return ["  temporal module: not adapted (lrpose video runs it per frame unless --temporal-weights fit it)"]
    first, last = t.get("loss_first"), t.get("loss_last")
    losses = f", loss {first:.4f} -> {last:.4f}" if isinstance(first, float) and isinstance(last, float) else ""
    return [
        f"  temporal module: adapted too, stored in this file (used by lrpose video): {t.get('steps', '?')} steps on "
        f"{t.get('chunks', '?')} chunks of <= {t.get('chunk', '?')} frames ({t.get('frames', '?')} frames), "
        f"from {t.get('start', '?')}{losses}"
    ]
