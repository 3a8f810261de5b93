"""``lrpose video``: one source -> ``<out>/<name>/`` with ``tracks/<id>.npz`` (one per person),
``overlay.mp4`` and ``summary.json``.

Tracks are written (atomically) as soon as they end, so memory does not grow with the video and an
interrupt keeps every finished track. Frames are drawn after a delay of ``min_track + max_gap``
frames, by which time it is known whether a track is long enough to keep. ``summary.json`` is
written last: its presence marks a finished video (``--resume`` skips it).
"""

from __future__ import annotations

import ctypes
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.crops import cut_square, square_from_box
from lrpose.estimate import focal_for
from lrpose.files import atomic_write_bytes, save_npz, save_obj
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.io import FrameSource, VideoWriter
from lrpose.pipeline import Pipeline, StageTimer
from lrpose.render import render_overlay
from lrpose.textured import TextureFusion, crop_visibility, frame_weight, predict_texture, upright_vertices
from lrpose.types import FrameResult, PoseEstimate

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
PALETTE = np.array(
    [[0.95, 0.45, 0.35], [0.35, 0.7, 0.95], [0.5, 0.85, 0.4], [0.95, 0.8, 0.3], [0.75, 0.5, 0.95],
     [0.3, 0.85, 0.8], [0.95, 0.55, 0.75], [0.65, 0.65, 0.65], [0.85, 0.6, 0.3], [0.45, 0.55, 0.95]],
    np.float32,
)  # fmt: skip


@dataclass(frozen=True)
class VideoOptions:
    """Output options of one video run."""

    min_track: int = 8
    """Tracks with fewer observed frames are dropped."""
    save_verts: bool = False
    overlay: bool = True
    render_backend: str = "auto"
    texture_stride: int = 5
    """With a texture network: predict a texture on every k-th observed frame of a track."""


@dataclass
class RunInfo:
    """What produced the results (recorded in every track file and the summary)."""

    body_id: str
    checkpoint_id: str
    untrained: bool
    detector: str
    temporal: str


def expand_sources(paths: list[Path]) -> list[Path]:
    """Videos, image folders and images, in order; a folder holding videos stands for its videos."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            videos = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES)
            out.extend(videos or [p])
        else:
            out.append(p)
    return out


def output_names(sources: list[Path]) -> list[str]:
    """One folder name per source (its stem; repeats get a numeric suffix)."""
    seen: Counter = Counter()
    names = []
    for p in sources:
        stem = p.name if p.is_dir() else p.stem
        seen[stem] += 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


class TrackTextures:
    """Per-track texture fusion for ``--texture``: TexGlo on every ``stride``-th observed frame's crop,
    fused over the texels each frame sees; a kept track gets ``<id>.obj/.mtl`` + ``<id>_texture.png``
    (the body upright in its best-seen pose)."""

    def __init__(self, net, body: BodyModel, stride: int) -> None:
        self.net, self.body, self.stride = net, body, stride
        self.fusions: dict[int, TextureFusion] = {}
        self.best: dict[int, tuple[float, np.ndarray]] = {}

    def add(self, p: PoseEstimate, image: np.ndarray) -> None:
        if not p.observed or p.frame_index % self.stride:
            return
        tex = predict_texture(self.net, cut_square(image, square_from_box(p.box_xyxy)))
        visible = crop_visibility(self.body, p.vertices, p.pred_cam, tex.shape[0])
        weight = frame_weight(axis_angle_to_rotmat(torch.from_numpy(p.pose[None, :3].copy()))[0].numpy(), p.native_size)
        self.fusions.setdefault(p.track_id, TextureFusion(tex.shape[0])).add(tex, visible, weight)
        if weight > self.best.get(p.track_id, (-1.0, None))[0]:
            self.best[p.track_id] = (weight, p.vertices)

    def end(self, track_id: int, folder: Path | None) -> None:
        """Write the track's textured mesh into ``folder`` (None: the track was dropped)."""
        fusion, best = self.fusions.pop(track_id, None), self.best.pop(track_id, None)
        if folder is None or fusion is None:
            return
        b = self.body
        save_obj(
            folder / f"{track_id:04d}.obj", upright_vertices(best[1]), b.faces.numpy(), b.uv.numpy(), b.uv_faces.numpy(), fusion.result()
        )


class TrackStore:
    """Accumulates each live track's per-frame arrays; writes ``tracks/<id>.npz`` when it ends."""

    def __init__(self, folder: Path, min_track: int, save_verts: bool, meta: dict, textures: TrackTextures | None = None) -> None:
        self.folder, self.min_track, self.save_verts, self.meta = folder, min_track, save_verts, meta
        self.textures = textures
        self.rows: dict[int, list[dict]] = {}
        self.observed: Counter = Counter()
        self.kept: dict[int, int] = {}
        """track id -> last kept frame index (finished tracks that were written)."""
        self.lengths: dict[int, int] = {}
        self.ranges: Counter = Counter()
        """person-frames of the kept tracks per resolution range."""
        self.dropped = 0

    def add(self, p: PoseEstimate, time_s: float, image: np.ndarray) -> None:
        x1, y1, x2, y2 = (float(v) for v in p.box_xyxy)
        row = {
            "pred_cam": p.pred_cam, "orig_cam": p.orig_cam, "pose": p.pose, "betas": p.betas, "joints3d": p.joints3d,
            "joints2d": p.joints2d, "bboxes": np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float32),
            "boxes_xyxy": p.box_xyxy, "frame_ids": p.frame_index, "time_s": time_s, "range_index": p.range_index,
            "native_size": p.native_size, "trans": p.trans, "observed": p.observed,
        }  # fmt: skip
        if self.save_verts:
            row["verts"] = p.vertices.astype(np.float32)
        self.rows.setdefault(p.track_id, []).append(row)
        self.observed[p.track_id] += int(p.observed)
        if self.textures is not None:
            self.textures.add(p, image)

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
        if sum(r["observed"] for r in rows) < self.min_track:
            self.dropped += 1
            if self.textures is not None:
                self.textures.end(track_id, None)
            return
        arrays = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
        arrays["frame_ids"] = arrays["frame_ids"].astype(np.int32)
        arrays["range_index"] = arrays["range_index"].astype(np.int8)
        arrays["native_size"] = arrays["native_size"].astype(np.int32)
        save_npz(self.folder / f"{track_id:04d}.npz", {**arrays, "track_id": track_id, **self.meta})
        self.kept[track_id] = int(arrays["frame_ids"][-1])
        self.ranges.update(arrays["range_index"].tolist())
        if self.textures is not None:
            self.textures.end(track_id, self.folder)
        self.lengths[track_id] = len(rows)

    def end_all(self) -> None:
        for track_id in list(self.rows):
            self.end(track_id)


def _draw(result: FrameResult, store: TrackStore, faces: torch.Tensor, focal: float, backend: str) -> np.ndarray:
    people = [p for p in result.people if store.drawable(p.track_id, result.frame.index)]
    image = result.frame.image
    if not people:
        return image
    verts = torch.from_numpy(np.stack([p.vertices for p in people]))
    trans = torch.from_numpy(np.stack([p.trans for p in people]))
    colors = torch.from_numpy(PALETTE[[p.track_id % len(PALETTE) for p in people]])
    drawn = render_overlay(image, verts, faces, trans, focal, colors, backend=backend)
    for p, c in zip(people, colors.numpy(), strict=True):
        x, y = int(p.box_xyxy[0]), max(int(p.box_xyxy[1]) - 3, 10)
        color = tuple(int(v) for v in c * 255)
        cv2.putText(drawn, str(p.track_id), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(drawn, str(p.track_id), (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return drawn


def _trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere a no-op). Without it glibc keeps
    the holes left by tensors of varying sizes and RSS creeps up over a long video (+76 MB over
    500 frames measured; flat with a trim every 100 frames)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def is_finished(folder: Path, source: Path) -> bool:
    """True when ``folder`` holds a finished run of ``source`` (same file size)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return summary.get("source_bytes") == _size(source)


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def process_video(
    source_path: Path,
    folder: Path,
    pipeline: Pipeline,
    body: BodyModel,
    info: RunInfo,
    options: VideoOptions,
    progress: Callable[[int, int, str], None] | None = None,
    texture_net=None,
) -> dict:
    """Run the pipeline on one source into ``folder``; returns the summary (also in summary.json).

    Raises InputError before writing anything when the source cannot be opened.
    """
    t_start = time.perf_counter()
    source = FrameSource(source_path)
    timer = pipeline.timer = StageTimer()
    tracks_dir = folder / "tracks"
    tracks_dir.mkdir(parents=True, exist_ok=True)
    for old in [*tracks_dir.glob("*.npz"), *tracks_dir.glob("*.obj"), *tracks_dir.glob("*.mtl"), *tracks_dir.glob("*.png")]:
        old.unlink()  # a rerun replaces the previous results
    (folder / "summary.json").unlink(missing_ok=True)
    meta = {
        "fps": np.float32(source.fps), "image_size": np.array([source.width, source.height], np.int32),
        "focal_px": np.float32(focal_for(source.width, source.height)), "body_model": info.body_id,
        "checkpoint": info.checkpoint_id, "temporal": info.temporal, "untrained": info.untrained,
    }  # fmt: skip
    textures = TrackTextures(texture_net, body, options.texture_stride) if texture_net is not None else None
    store = TrackStore(tracks_dir, options.min_track, options.save_verts, meta, textures)
    delay = options.min_track + pipeline.config.max_gap
    queue: deque[FrameResult] = deque()
    frames = 0
    live: set[int] = set()
    size = (source.width + source.width % 2, source.height + source.height % 2)
    writer = VideoWriter(folder / "overlay.mp4", source.fps, *size) if options.overlay else None
    faces = body.faces
    focal = float(meta["focal_px"])

    def flush(result: FrameResult) -> None:
        with timer("render"):
            drawn = _draw(result, store, faces, focal, options.render_backend)
        with timer("encode"):
            writer.write(_even(drawn))

    with writer if writer is not None else nullcontext():
        for result in pipeline.run(source, source.fps):
            frames += 1
            with timer("write"):
                ids = {p.track_id for p in result.people}
                for p in result.people:
                    store.add(p, result.frame.time_s, result.frame.image)
                for gone in sorted(live - ids):
                    store.end(gone)
                live = ids
            if writer is not None:  # frames wait only for the overlay
                queue.append(result)
                while len(queue) > delay:
                    flush(queue.popleft())
            if frames % 100 == 0:
                _trim_heap()
            if progress is not None:
                progress(frames, max(source.frame_count, frames), f"{len(live)} people")
        with timer("write"):
            store.end_all()
        while queue:
            flush(queue.popleft())
    total = time.perf_counter() - t_start
    summary = {
        "source": str(source_path),
        "source_bytes": _size(source_path),
        "frames": frames,
        "fps": source.fps,
        "width": source.width,
        "height": source.height,
        "people": len(store.kept),
        "tracks": [{"id": i, "frames": store.lengths[i], "file": f"tracks/{i:04d}.npz"} for i in sorted(store.kept)],
        "dropped_short_tracks": store.dropped,
        "person_frames_per_range": {str(p): store.ranges.get(p, 0) for p in range(5)},
        "detector": info.detector,
        "temporal": info.temporal,
        "checkpoint": info.checkpoint_id,
        "body_model": info.body_id,
        "untrained": info.untrained,
        "seconds_per_stage": {k: round(v, 3) for k, v in sorted(timer.seconds.items())},
        "seconds": round(total, 3),
        "frames_per_second": round(frames / total, 2) if total > 0 else None,
        "error": source.error,
    }
    atomic_write_bytes(folder / "summary.json", json.dumps(summary, indent=1).encode())
    return summary
