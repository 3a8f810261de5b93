"""``lrpose video``: one source -> ``<out>/<name>/`` with ``tracks/<id>.npz`` (one per person),
``overlay.mp4`` and ``summary.json``.

Tracks are written (atomically) as soon as they end, so memory does not grow with the video and an
interrupt keeps every finished track. Frames are drawn after a delay of ``min_track + max_gap``
frames, by which time it is known whether a track is long enough to keep. ``summary.json`` is
written last: its presence marks a finished video (``--resume`` skips it).
"""

from __future__ import annotations

import ctypes
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.config import check_choice, check_minimums
from lrpose.crops import cut_square, square_from_box
from lrpose.files import FolderLock, make_folder
from lrpose.geometry import axis_angle_to_rotmat, focal_for
from lrpose.io import FrameSource, VideoWriter
from lrpose.pipeline import Pipeline, StageTimer
from lrpose.render import render_overlay
from lrpose.results import RunInfo, RunSummary, TrackWriter, read_summary, save_textured_mesh
from lrpose.textured import TextureFusion, crop_visibility, frame_weight, predict_texture
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

    def __post_init__(self) -> None:
        check_minimums(self, min_track=1, texture_stride=1)
        check_choice("render", self.render_backend, ("auto", "gl", "torch"))


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
        if folder is not None and fusion is not None:
            save_textured_mesh(folder / f"{track_id:04d}.obj", self.body, best[1], fusion.result())


MAX_DRAWN_GAP = 3
"""The overlay draws a person on frames the tracker only predicted when the gap is at most this long."""


def _render(image: np.ndarray, people: list[PoseEstimate], faces: torch.Tensor, focal: float, backend: str) -> np.ndarray:
    """``image`` with ``people``'s bodies drawn over it and their track ids beside them."""
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


_RENDER_THREAD: list[ThreadPoolExecutor] = []
"""The one thread that draws and encodes overlay frames (beside the estimation; its GL context lives there)."""
RENDER_AHEAD = 4
"""Overlay frames that may wait for the render thread before the estimation waits for it."""


def _render_thread() -> ThreadPoolExecutor:
    if not _RENDER_THREAD:
        _RENDER_THREAD.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrpose-overlay"))
    return _RENDER_THREAD[0]


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
    summary = read_summary(folder)
    return summary is not None and summary.source_bytes == _size(source)


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _fresh_folder(folder: Path) -> Path:
    """``folder/tracks`` emptied of a previous run's results (a rerun replaces them), no summary, and
    no exports of the old tracks (``*.glb``, ``bvh/*.bvh``), no temporary files a killed run left
    (``.overlay.*.mp4``, ``.*.tmp``; safe: the caller holds the lock)."""
    tracks_dir = make_folder(folder / "tracks")
    for old in [
        *tracks_dir.glob("*.npz"),
        *tracks_dir.glob("*.obj"),
        *tracks_dir.glob("*.mtl"),
        *tracks_dir.glob("*.png"),
        *tracks_dir.glob(".*.tmp"),
        *folder.glob(".*.tmp"),
        *folder.glob(".overlay.*.mp4"),
        *folder.glob("*.glb"),
        *folder.glob("bvh/*.bvh"),
    ]:  # fmt: skip  (exports of the old tracks)
        old.unlink(missing_ok=True)
    (folder / "summary.json").unlink(missing_ok=True)
    return tracks_dir


def process_video(
    source_path: Path,
    folder: Path,
    pipeline: Pipeline,
    body: BodyModel,
    info: RunInfo,
    options: VideoOptions,
    progress: Callable[[int, int, str], None] | None = None,
    texture_net=None,
) -> RunSummary:
    """Run the pipeline on one source into ``folder``; returns the summary (also in summary.json).

    Raises InputError before writing anything when the source cannot be opened, when another run
    holds ``folder`` (``FolderLock``) or when ``folder`` cannot be written; an output fault mid-run
    raises InputError too, keeping the tracks already written and no partial file.
    """
    source = FrameSource(source_path)
    with FolderLock(folder):
        return _process(source_path, source, folder, pipeline, body, info, options, progress, texture_net)


def _process(source_path: Path, source: FrameSource, folder: Path, pipeline: Pipeline, body: BodyModel, info: RunInfo,
             options: VideoOptions, progress: Callable[[int, int, str], None] | None, texture_net) -> RunSummary:  # fmt: skip
    t_start = time.perf_counter()
    dropped_before = getattr(pipeline.detector, "dropped_keypoints", 0)  # the detector may serve several sources
    boxes_before = pipeline.detector.counts() if hasattr(pipeline.detector, "counts") else None  # --boxes
    if hasattr(pipeline.detector, "new_scene"):  # HOG's size check learns each camera's scene anew
        pipeline.detector.new_scene()
    timer = pipeline.timer = StageTimer(pipeline.timer.device)  # a CUDA pipeline's timer waits for the device
    tracks_dir = _fresh_folder(folder)
    meta = {
        "fps": np.float32(source.fps), "image_size": np.array([source.width, source.height], np.int32),
        "focal_px": np.float32(focal_for(source.width, source.height)), **info.arrays(), "temporal": info.temporal,
    }  # fmt: skip
    textures = TrackTextures(texture_net, body, options.texture_stride) if texture_net is not None else None
    on_end = (lambda i, kept: textures.end(i, tracks_dir if kept else None)) if textures is not None else None
    store = TrackWriter(tracks_dir, options.min_track, options.save_verts, meta, on_end)
    size = (source.width + source.width % 2, source.height + source.height % 2)
    writer = VideoWriter(folder / "overlay.mp4", source.fps, *size) if options.overlay else None
    overlay = _Overlay(writer, store, body.faces, float(meta["focal_px"]), options, options.min_track + pipeline.config.max_gap, timer)
    frames = 0
    live: set[int] = set()
    with writer if writer is not None else nullcontext():
        for result in pipeline.run(source, source.fps):
            frames += 1
            with timer("write"):
                ids = {p.track_id for p in result.people}
                for p in result.people:
                    store.add(p, result.frame.time_s)
                    if textures is not None and p.finite:
                        textures.add(p, result.frame.image)
                for gone in sorted(live - ids):
                    store.end(gone)
                live = ids
            overlay.push(result)
            if frames % 100 == 0:
                _trim_heap()
            if progress is not None:
                progress(frames, max(source.frame_count, frames), f"{len(live)} people")
        with timer("write"):
            store.end_all()
        overlay.finish()
    summary = _summary(source_path, source, frames, store, info, timer, time.perf_counter() - t_start)
    dropped = getattr(pipeline.detector, "dropped_keypoints", 0) - dropped_before
    if dropped:
        summary.warnings.append(f"{dropped} detector keypoint(s) were not finite or outside the frame and were ignored")
    if boxes_before is not None:  # --boxes: boxes that never landed in this video, or were clipped
        summary.warnings.extend(pipeline.detector.report(frames, boxes_before))
    summary.warnings += _warnings(store)
    summary.save(folder)
    return summary


def _warnings(store: TrackWriter) -> list[str]:
    """The summary's warning lines about results: non-finite estimates dropped, people below 24 px."""
    lines = []
    if store.nonfinite:
        lines.append(f"{store.nonfinite} person-frame(s) had NaN or infinite estimates and were dropped (not written)")
    if store.below_minimum:
        lines.append(f"{store.below_minimum} person-frame(s) have a crop below the 24 px the model is trained for (less reliable)")
    return lines


class _Overlay:
    """overlay.mp4: frames wait ``delay`` frames (until it is known which tracks are kept), then are
    drawn and encoded in the render thread, beside the estimation of later frames (the ``render`` and
    ``encode`` seconds overlap the other stages'); with ``options.overlay`` off nothing is held or written."""

    def __init__(self, writer: VideoWriter | None, store: TrackWriter, faces: torch.Tensor, focal: float, options: VideoOptions, delay: int,
                 timer: StageTimer) -> None:  # fmt: skip
        self.writer, self.store, self.faces, self.focal = writer, store, faces, focal
        self.enabled, self.backend, self.delay, self.timer = writer is not None, options.render_backend, delay, timer
        self.queue: deque[FrameResult] = deque()
        self.jobs: deque[Future] = deque()
        """Frames handed to the render thread, oldest first."""
        self.last_seen: dict[int, int] = {}
        """track id -> last frame (drawn so far) where the detector saw it."""

    def push(self, result: FrameResult) -> None:
        if not self.enabled:
            return
        self.queue.append(result)
        while len(self.queue) > self.delay:
            self._flush(self.queue.popleft())

    def finish(self) -> None:
        while self.queue:
            self._flush(self.queue.popleft())
        while self.jobs:
            self.jobs.popleft().result()

    def _hidden(self, result: FrameResult) -> set[int]:
        """Tracks only predicted on this frame within a gap longer than ``MAX_DRAWN_GAP`` frames
        (the gap's end is looked up in the queued later frames)."""
        hidden = set()
        for p in result.people:
            if p.observed:
                self.last_seen[p.track_id] = result.frame.index
                continue
            ahead = (r.frame.index for r in self.queue for q in r.people if q.track_id == p.track_id and q.observed)
            end = next(ahead, (self.queue[-1].frame.index if self.queue else result.frame.index) + 1)
            if end - self.last_seen.get(p.track_id, result.frame.index - 1) - 1 > MAX_DRAWN_GAP:
                hidden.add(p.track_id)
        return hidden

    def _flush(self, result: FrameResult) -> None:
        """Hand the frame and the people to draw on it to the render thread (which also encodes); errors
        there surface here, a few frames later, or in ``finish``."""
        hidden = self._hidden(result)
        people = [p for p in result.people if p.finite and p.track_id not in hidden and self.store.drawable(p.track_id, result.frame.index)]
        self.jobs.append(_render_thread().submit(self._draw_and_write, result.frame.image, people))
        while len(self.jobs) > RENDER_AHEAD:
            self.jobs.popleft().result()

    def _draw_and_write(self, image: np.ndarray, people: list[PoseEstimate]) -> None:
        with self.timer("render"):
            drawn = _render(image, people, self.faces, self.focal, self.backend)
        with self.timer("encode"):
            self.writer.write(_even(drawn))


def _summary(source_path: Path, source: FrameSource, frames: int, store: TrackWriter, info: RunInfo, timer: StageTimer,
             total: float) -> RunSummary:  # fmt: skip
    return RunSummary(
        source=str(source_path), source_bytes=_size(source_path), frames=frames, fps=source.fps, width=source.width,
        height=source.height, kept_tracks=len(store.kept),
        tracks=[{"id": i, "frames": store.lengths[i], "file": f"tracks/{i:04d}.npz"} for i in sorted(store.kept)],
        dropped_short_tracks=store.dropped, person_frames_per_range=RunSummary.ranges_histogram(store.ranges),
        detector=info.detector, temporal=info.temporal, checkpoint=info.checkpoint_id, body_model=info.body_id,
        untrained=info.untrained, seconds_per_stage={k: round(v, 3) for k, v in sorted(timer.seconds.items())},
        seconds=round(total, 3), frames_per_second=round(frames / total, 2) if total > 0 else None, error=source.error,
        texture=info.texture, refined_person_frames=store.refined, nonfinite_person_frames=store.nonfinite,
        kp_residual_px=[round(float(v) / store.refined, 2) for v in store.residual_sums] if store.refined else None,
    )  # fmt: skip
