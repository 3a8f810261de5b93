"""Every file a run writes, and reading them back: the image ``.npz``, track ``.npz`` files, textured
OBJ meshes and the typed run summary (``summary.json``). All writes are atomic (``lrpose.files``).

One box convention: a box is ``[x1, y1, x2, y2]`` in full-image pixels (x2, y2 exclusive).
Per person and frame a file holds ``boxes_xyxy`` (the person box: detector, tracker or ``--box``;
the whole image for ``lrpose image`` without ``--box``), ``crop_xyxy`` (the square fed to the
network, ``boxes_xyxy`` padded ``--box-scale``, default 1.2x) and, for VIBE compatibility, ``bboxes`` = the person box as
``[cx, cy, w, h]``. An image file holds exactly the keys of one frame of a track file (no time axis,
no ``frame_ids`` / ``time_s``), plus the run's metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lrpose.files import atomic_write_bytes, save_npz, save_png
from lrpose.resolution import NUM_RANGES
from lrpose.types import PoseEstimate


@dataclass(frozen=True)
class RunInfo:
    """What produced the results (recorded in every output file and the summary)."""

    body_id: str
    checkpoint_id: str
    """The RSC-Net checkpoint id."""
    untrained: bool
    """True when the RSC-Net is untrained (its outputs are meaningless)."""
    detector: str = "none"
    temporal: str = "off"
    texture: str | None = None
    """Texture network checkpoint id when a texture was predicted."""

    def arrays(self) -> dict[str, Any]:
        """The metadata entries of an output ``.npz``."""
        meta: dict[str, Any] = {"body_model": self.body_id, "checkpoint": self.checkpoint_id, "untrained": self.untrained}
        if self.texture is not None:
            meta["texture"] = self.texture
        return meta


def person_arrays(p: PoseEstimate, save_verts: bool = False) -> dict[str, np.ndarray]:
    """The per-frame arrays of one person (shapes without the time axis; units in ``PoseEstimate``)."""
    x1, y1, x2, y2 = (float(v) for v in p.box_xyxy)
    arrays = {
        "pred_cam": p.pred_cam, "orig_cam": p.orig_cam, "pose": p.pose, "rotmats": p.rotmats, "betas": p.betas,
        "joints3d": p.joints3d, "joints2d": p.joints2d, "bboxes": np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float32),
        "boxes_xyxy": np.asarray(p.box_xyxy, np.float32), "crop_xyxy": p.crop.box_xyxy().astype(np.float32),
        "range_index": np.int8(p.range_index), "native_size": np.int32(p.native_size), "below_min_size": p.below_minimum,
        "trans": p.trans, "observed": p.observed, "keypoints2d": p.keypoints2d, "refined": p.refined, "kp_residual": p.kp_residual,
    }  # fmt: skip
    if save_verts:
        arrays["verts"] = p.vertices.astype(np.float32)
    return {k: np.asarray(v) for k, v in arrays.items()}


def save_image_result(path: Path, p: PoseEstimate, info: RunInfo, image_size: tuple[int, int], focal_px: float, save_verts: bool) -> None:
    """``lrpose image``'s ``.npz``: one person's arrays plus ``image_size`` (w, h), ``focal_px`` and ``info``."""
    meta = {"image_size": np.array(image_size, np.int32), "focal_px": np.float64(focal_px), **info.arrays()}
    save_npz(path, {**person_arrays(p, save_verts), **meta})


def read_result(path: Path) -> dict[str, np.ndarray]:
    """An image or track ``.npz`` as a dict of arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class TrackWriter:
    """Accumulates each live track's per-frame arrays; writes ``<folder>/<id>.npz`` when it ends,
    or drops it when it has fewer than ``min_track`` observed frames.

    ``on_end(track_id, kept)`` (optional) is called for every ended track.
    """

    def __init__(self, folder: Path, min_track: int, save_verts: bool, meta: dict[str, Any], on_end=None) -> None:
        self.folder, self.min_track, self.save_verts, self.meta, self.on_end = folder, min_track, save_verts, meta, on_end
        self.rows: dict[int, list[dict]] = {}
        self.observed: Counter = Counter()
        self.kept: dict[int, int] = {}
        """track id -> last kept frame index (finished tracks that were written)."""
        self.lengths: dict[int, int] = {}
        self.ranges: Counter = Counter()
        """person-frames of the kept tracks per resolution range."""
        self.dropped = 0
        self.refined = 0
        """person-frames of the kept tracks fitted to keypoints."""
        self.residual_sums = np.zeros(2)
        """sums of the keypoint residual (px) before / after over those person-frames."""
        self.below_minimum = 0
        """person-frames of the kept tracks whose crop is below the 24 px the model is trained for."""
        self.nonfinite = 0
        """person-frames dropped because their estimate was not finite (NaN / inf)."""

    def add(self, p: PoseEstimate, time_s: float) -> None:
        """Append one person-frame to its track; a non-finite estimate is counted and dropped."""
        if not p.finite:
            self.nonfinite += 1
            return
        row = {**person_arrays(p, self.save_verts), "frame_ids": np.int32(p.frame_index), "time_s": time_s}
        self.rows.setdefault(p.track_id, []).append(row)
        self.observed[p.track_id] += int(p.observed)

    def drawable(self, track_id: int, frame_index: int) -> bool:
        """Whether a person belongs in the overlay at ``frame_index`` (its track is, or will be, kept)."""
        if track_id in self.kept:
            return frame_index <= self.kept[track_id]
        return track_id in self.rows and self.observed[track_id] >= self.min_track

    def end(self, track_id: int) -> None:
        """The track ended: drop trailing bridged frames, then write it or drop it as too short."""
        rows = self.rows.pop(track_id, [])
        self.observed.pop(track_id, None)
        while rows and not rows[-1]["observed"]:
            rows.pop()
        kept = sum(bool(r["observed"]) for r in rows) >= self.min_track
        if kept:
            arrays = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            save_npz(self.folder / f"{track_id:04d}.npz", {**arrays, "track_id": track_id, **self.meta})
            self.kept[track_id] = int(arrays["frame_ids"][-1])
            self.ranges.update(arrays["range_index"].tolist())
            self.lengths[track_id] = len(rows)
            self.refined += int(arrays["refined"].sum())
            self.below_minimum += int(arrays["below_min_size"].sum())
            self.residual_sums += arrays["kp_residual"][arrays["refined"]].sum(0)
        else:
            self.dropped += 1
        if self.on_end is not None:
            self.on_end(track_id, kept)

    def end_all(self) -> None:
        for track_id in list(self.rows):
            self.end(track_id)


def save_obj(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray | None = None,
    uv_faces: np.ndarray | None = None,
    texture: np.ndarray | None = None,
) -> list[Path]:
    """Write a mesh as OBJ (+ MTL + PNG texture when ``uv``/``uv_faces``/``texture`` are given).

    vertices (V, 3) metres, faces (F, 3) 0-based; uv (T, 2) in [0, 1] with v up, uv_faces (F, 3);
    texture (H, W, 3) uint8 RGB. Faces are written ``f v/vt`` so the body's vertex order is kept;
    the material's Kd is white so viewers show the texture unmodified. Returns the files written.
    """
    path = Path(path)
    lines = [f"# lrpose mesh: {len(vertices)} vertices, {len(faces)} faces"]
    files = [path]
    textured = uv is not None and uv_faces is not None and texture is not None
    if textured:
        mtl, png = path.with_suffix(".mtl"), path.with_name(path.stem + "_texture.png")
        lines.append(f"mtllib {mtl.name}")
        lines.append("usemtl body")
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64)]
    if textured:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(uv, np.float64)]
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(faces, uv_faces, strict=True)]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    if textured:
        material = f"newmtl body\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd {png.name}\n"
        save_png(png, texture)
        atomic_write_bytes(mtl, material.encode())
        files += [mtl, png]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return files


def upright_vertices(vertices_cam: np.ndarray) -> np.ndarray:
    """Camera-frame (x right, y down, z forward) vertices -> y up, z towards the viewer (OBJ viewers)."""
    return vertices_cam * np.array([1.0, -1.0, -1.0])


def save_textured_mesh(path: Path, body, vertices_cam: np.ndarray, texture: np.ndarray) -> list[Path]:
    """A person's textured OBJ (+ MTL + ``<stem>_texture.png``): the body's mesh and UV layout with
    (V, 3) camera-frame ``vertices_cam`` turned upright and a (T, T, 3) uint8 UV ``texture``."""
    return save_obj(path, upright_vertices(vertices_cam), body.faces.numpy(), body.uv.numpy(), body.uv_faces.numpy(), texture)


@dataclass
class RunSummary:
    """``summary.json`` of one ``lrpose video`` source; written last, so it marks a finished run."""

    source: str
    source_bytes: int | None
    frames: int
    fps: float
    width: int
    height: int
    kept_tracks: int
    """Tracks written (a person who leaves and comes back, or whose track breaks, counts more than once;
    ``people`` in older summaries, still read)."""
    tracks: list[dict[str, Any]]
    """One ``{"id", "frames", "file"}`` per kept track."""
    dropped_short_tracks: int
    person_frames_per_range: dict[str, int]
    detector: str
    temporal: str
    checkpoint: str
    body_model: str
    untrained: bool
    seconds_per_stage: dict[str, float]
    seconds: float
    frames_per_second: float | None
    error: str | None = None
    texture: str | None = None
    refined_person_frames: int = 0
    """Person-frames of the kept tracks fitted to detector keypoints."""
    kp_residual_px: list[float] | None = None
    """Mean distance (px) of the body's COCO keypoints to the detector's over those person-frames, before / after fitting."""
    nonfinite_person_frames: int = 0
    """Person-frames dropped because the network or fit gave NaN / infinite values (never written)."""
    warnings: list[str] = field(default_factory=list)
    """One line each: input that was ignored or results to treat with care (the run still completed)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of a summary written by another version (kept when read back)."""

    @staticmethod
    def ranges_histogram(ranges: Counter) -> dict[str, int]:
        """Person-frames per range index, every range present ("0".."4")."""
        return {str(p): ranges.get(p, 0) for p in range(NUM_RANGES)}

    def to_json(self) -> str:
        data = asdict(self)
        data.update(data.pop("extra"))
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        data = json.loads(text)
        if "people" in data and "kept_tracks" not in data:  # older summaries called the track count "people"
            data["kept_tracks"] = data.pop("people")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known})

    def save(self, folder: Path) -> None:
        atomic_write_bytes(folder / "summary.json", self.to_json().encode())


def read_summary(folder: Path) -> RunSummary | None:
    """The summary of a finished run in ``folder``, or None (absent, unreadable or incomplete)."""
    try:
        return RunSummary.from_json((folder / "summary.json").read_text())
    except (OSError, ValueError, TypeError):
        return None
