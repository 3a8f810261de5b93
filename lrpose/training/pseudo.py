"""Pseudo-labels for ``lrpose adapt``: the video pipeline with keypoint fitting over the user's own
footage, and the person-frames whose fit can be trusted.

A video is split in time: frames before ``(1 - val_fraction)`` of its length give training
pseudo-labels (the fitted SMPL parameters and crop camera, EFT style), the rest is the held-out
part, scored only against the detector's keypoints (``lrpose.training.adapt.heldout_score``).
Crops are stored as the network sees them: the person square cut at its native resolution and
resized to the network input (``crop_person`` without the normalisation), with the native side,
so lower-resolution views can be made from it later (``lrpose.resolution.degrade``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lrpose.crops import cut_square, resize_square
from lrpose.errors import InputError
from lrpose.resolution import MIN_SUPPORTED_SIZE
from lrpose.types import Frame, FrameResult, PoseEstimate

REASONS = ("too small", "truncated", "few keypoints", "not fitted", "high residual", "short track")
"""Why a person-frame is not a pseudo-label, in the order they are checked."""


@dataclass(frozen=True)
class LabelFilter:
    """When a fitted person-frame is trustworthy enough to be a pseudo-label."""

    min_keypoints: int = 10
    """Detector keypoints with confidence >= ``min_conf`` (of COCO's 17)."""
    min_conf: float = 0.3
    max_residual: float = 0.06
    """Mean distance of the fitted body's keypoints to the confident detector keypoints, in units of the box height
    (the network alone is typically at 0.08-0.25, a good fit at 0.02-0.04)."""
    min_height: float = 40.0
    """Person box height (px): below it the detector's left/right labels are not trusted (``--refine-min-height``)."""
    edge_margin: float = 2.0
    """A box within this many px of the frame's border is a truncated person."""
    min_track: int = 8
    """Detected (not bridged) frames a track needs."""


@dataclass
class LabelSet:
    """Stored person-frames, (N, ...) numpy arrays: the crop as the network sees it and its labels."""

    crops: np.ndarray
    """(N, S, S, 3) uint8 RGB at the network input size S."""
    native: np.ndarray
    """(N,) int32 crop side in source pixels (selects the range; lower views are made below it)."""
    pose: np.ndarray
    """(N, 72) float32 fitted axis-angle pose, root in the camera frame."""
    betas: np.ndarray
    """(N, 10) float32."""
    cam: np.ndarray
    """(N, 3) float32 weak-perspective crop camera ``[s, tx, ty]`` of the fit."""
    keypoints: np.ndarray
    """(N, 17, 3) float32 detector COCO keypoints in crop pixels of the S-px crop, with confidence."""
    height: np.ndarray
    """(N,) float32 person box height in source pixels."""
    frame: np.ndarray
    """(N,) int32 source frame index."""
    track: np.ndarray
    """(N,) int32 track id (unique over the videos of a run once ``gather`` has joined them): with ``frame``
    it orders a person's labels into sequences for the temporal module (``lrpose.training.adapt_temporal``)."""

    @staticmethod
    def empty(size: int) -> LabelSet:
        return LabelSet(*(np.zeros(s, t) for s, t in _SHAPES(size)))

    def __len__(self) -> int:
        return len(self.native)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": v for k, v in vars(self).items()}

    @staticmethod
    def from_arrays(z: dict[str, np.ndarray], prefix: str) -> LabelSet:
        return LabelSet(**{k: z[f"{prefix}{k}"] for k in LabelSet.__dataclass_fields__})

    @staticmethod
    def concat(sets: list[LabelSet], size: int) -> LabelSet:
        sets = [s for s in sets if len(s)] or [LabelSet.empty(size)]
        return LabelSet(**{k: np.concatenate([getattr(s, k) for s in sets]) for k in LabelSet.__dataclass_fields__})

    def take(self, index: np.ndarray) -> LabelSet:
        return LabelSet(**{k: getattr(self, k)[index] for k in LabelSet.__dataclass_fields__})


def _SHAPES(size: int) -> list[tuple[tuple[int, ...], type]]:  # noqa: N802  (a table)
    return [((0, size, size, 3), np.uint8), ((0,), np.int32), ((0, 72), np.float32), ((0, 10), np.float32), ((0, 3), np.float32),
            ((0, 17, 3), np.float32), ((0,), np.float32), ((0,), np.int32), ((0,), np.int32)]  # fmt: skip


def rejection(p: PoseEstimate, width: int, height: int, flt: LabelFilter) -> str | None:
    """Why the person-frame ``p`` of a ``width`` x ``height`` frame is no pseudo-label (one of
    ``REASONS`` but 'short track', which needs the whole track), None when it is trustworthy."""
    box_h = float(p.box_xyxy[3] - p.box_xyxy[1])
    if box_h < flt.min_height:
        return "too small"
    x1, y1, x2, y2 = (float(v) for v in p.box_xyxy)
    m = flt.edge_margin
    if x1 < m or y1 < m or x2 > width - 1 - m or y2 > height - 1 - m:
        return "truncated"
    if int((np.nan_to_num(p.keypoints2d[:, 2]) >= flt.min_conf).sum()) < flt.min_keypoints:
        return "few keypoints"
    if not (p.refined and p.observed and p.finite):
        return "not fitted"
    if not float(p.kp_residual[1]) <= flt.max_residual * box_h:
        return "high residual"
    return None


def heldout_usable(p: PoseEstimate, width: int, height: int, flt: LabelFilter) -> bool:
    """A held-out person-frame is scored when its keypoints are trustworthy (enough confident ones, tall
    enough, not truncated); the fit itself is not needed (scores are without refinement)."""
    conf = np.nan_to_num(p.keypoints2d[:, 2])
    box_h = float(p.box_xyxy[3] - p.box_xyxy[1])
    x1, y1, x2, y2 = (float(v) for v in p.box_xyxy)
    m = flt.edge_margin
    inside = x1 >= m and y1 >= m and x2 <= width - 1 - m and y2 <= height - 1 - m
    return p.observed and int((conf >= flt.min_conf).sum()) >= flt.min_keypoints and box_h >= flt.min_height and inside


def _record(p: PoseEstimate, image: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """One person-frame as LabelSet fields (crop at the network input size ``size``)."""
    sq = p.crop
    crop = resize_square(cut_square(image, sq), size)
    kp = np.nan_to_num(p.keypoints2d).astype(np.float32).copy()
    k = size / sq.side  # image pixel -> crop pixel of the size-px crop (pixel centres at integers)
    kp[:, 0] = (kp[:, 0] - sq.x0 + 0.5) * k - 0.5
    kp[:, 1] = (kp[:, 1] - sq.y0 + 0.5) * k - 0.5
    return {
        "crops": crop, "native": np.int32(sq.side), "pose": p.pose.astype(np.float32), "betas": p.betas.astype(np.float32),
        "cam": p.pred_cam.astype(np.float32), "keypoints": kp, "height": np.float32(p.box_xyxy[3] - p.box_xyxy[1]),
        "frame": np.int32(p.frame_index), "track": np.int32(p.track_id),
    }  # fmt: skip


def _stack(records: list[dict[str, np.ndarray]], size: int) -> LabelSet:
    if not records:
        return LabelSet.empty(size)
    return LabelSet(**{k: np.stack([r[k] for r in records]) for k in LabelSet.__dataclass_fields__})


@dataclass
class Collected:
    """Pseudo-labels and held-out person-frames of one video, and what happened to the others."""

    train: LabelSet
    heldout: LabelSet
    counts: dict[str, int] = field(default_factory=dict)
    """'person_frames', 'train_frames' (person-frames in the training part), 'labels', 'heldout',
    'below_min_size' and one entry per rejection reason."""


class Collector:
    """Consumes a video's ``FrameResult`` stream (``feed``), keeping every ``label_stride``-th
    trustworthy person-frame of each track that turns out long enough; frames from ``split`` on
    are the held-out part, the ``gap`` frames before it belong to neither. ``finish`` returns the
    ``Collected`` sets."""

    def __init__(self, split: int, size: int, width: int, height: int, flt: LabelFilter, label_stride: int = 1, gap: int = 0) -> None:
        self.split, self.size, self.width, self.height, self.flt, self.stride = split, size, width, height, flt, label_stride
        self.gap = gap
        """Frames just before ``split`` used for neither part (neighbouring frames look alike)."""
        self.pending: dict[int, list[dict[str, np.ndarray]]] = {}
        self.detected: Counter = Counter()
        self.good: Counter = Counter()
        self.labels: list[dict[str, np.ndarray]] = []
        self.heldout: list[dict[str, np.ndarray]] = []
        self.counts: Counter = Counter({r: 0 for r in REASONS})

    def feed(self, result: FrameResult) -> None:
        live = set()
        for p in result.people:
            live.add(p.track_id)
            self.counts["person_frames"] += 1
            self.counts["below_min_size"] += int(p.native_size < MIN_SUPPORTED_SIZE)
            if p.frame_index >= self.split:
                if p.finite and heldout_usable(p, self.width, self.height, self.flt):
                    self.heldout.append(_record(p, result.frame.image, self.size))
                continue
            if p.frame_index >= self.split - self.gap:
                continue
            self.counts["train_frames"] += 1
            self.detected[p.track_id] += int(p.observed)
            why = rejection(p, self.width, self.height, self.flt)
            if why is not None:
                self.counts[why] += 1
                continue
            self.good[p.track_id] += 1
            if (self.good[p.track_id] - 1) % self.stride == 0:
                self.pending.setdefault(p.track_id, []).append(_record(p, result.frame.image, self.size))
        for gone in [i for i in self.pending if i not in live]:
            self._end(gone)

    def _end(self, track_id: int) -> None:
        kept = self.pending.pop(track_id, [])
        if self.detected[track_id] >= self.flt.min_track:
            self.labels.extend(kept)
        else:
            self.counts["short track"] += self.good[track_id]

    def finish(self) -> Collected:
        for track_id in list(self.pending):
            self._end(track_id)
        self.counts["labels"], self.counts["heldout"] = len(self.labels), len(self.heldout)
        return Collected(_stack(self.labels, self.size), _stack(self.heldout, self.size), dict(self.counts))


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video the pseudo-labelling reads: windows of ``window`` consecutive frames,
    one window in every ``stride`` (``window`` 1: every ``stride``-th frame). Kept frames are
    renumbered 0, 1, ... (the tracker's timeline); within a window people move as at the source's
    frame rate, so tracks and the temporal stage's chunks see real motion."""

    stride: int = 1
    window: int = 1

    def keeps(self, f: int) -> bool:
        return (f // self.window) % self.stride == 0

    def source(self, k: np.ndarray) -> np.ndarray:
        """Source frame indices of renumbered frames ``k`` (same shape and dtype)."""
        return (k // self.window) * self.window * self.stride + k % self.window

    def kept_before(self, s: int) -> int:
        """How many source frames before frame ``s`` are read (the renumbered index of the first at or after it)."""
        period = self.window * self.stride
        return (s // period) * self.window + min(s % period, self.window)

    def fps(self, source_fps: float) -> float:
        """The frame rate the tracker sees: the source's inside windows, ``source_fps / stride`` for single frames."""
        return source_fps if self.window > 1 else source_fps / self.stride


def strided(frames: Iterator[Frame], sampling: Sampling) -> Iterator[Frame]:
    """The frames ``sampling`` keeps, renumbered 0, 1, ... (source frame = ``sampling.source(index)``)."""
    for k, frame in enumerate(f for f in frames if sampling.keeps(f.index)):
        yield Frame(k, frame.image, frame.time_s)


def collect_video(run_frames: Callable[[], Iterator[FrameResult]], frame_count: int, sampling: Sampling, val_fraction: float,
                  size: int, width: int, height: int, flt: LabelFilter, label_stride: int, gap: int = 0) -> Collected:  # fmt: skip
    """Pseudo-labels of one video: ``run_frames()`` streams the pipeline's results over the frames
    ``sampling`` keeps (renumbered); the held-out part starts at ``(1 - val_fraction)`` of
    ``frame_count`` source frames, the ``gap`` (renumbered) frames before it are used for neither.
    Frame indices in the result are source frames."""
    split = sampling.kept_before(int(np.floor((1.0 - val_fraction) * frame_count)))
    collector = Collector(split, size, width, height, flt, label_stride, gap)
    for result in run_frames():
        collector.feed(result)
    out = collector.finish()
    out.train.frame = sampling.source(out.train.frame)
    out.heldout.frame = sampling.source(out.heldout.frame)
    return out


def save_collected(path: Path, c: Collected, settings: dict) -> None:
    """One video's sets into ``path`` (atomic ``.npz``), with the ``settings`` that made them."""
    from lrpose.files import save_npz

    save_npz(path, {**c.train.arrays("train_"), **c.heldout.arrays("heldout_"), "counts": np.array(json.dumps(c.counts)),
                    "settings": np.array(json.dumps(settings, sort_keys=True))})  # fmt: skip


def load_collected(path: Path, settings: dict) -> Collected | None:
    """The sets cached in ``path`` when they were made with ``settings``; None otherwise (or unreadable)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["settings"])) != json.loads(json.dumps(settings, sort_keys=True)):
                return None
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return Collected(LabelSet.from_arrays(arrays, "train_"), LabelSet.from_arrays(arrays, "heldout_"), json.loads(str(arrays["counts"])))


def check_enough(counts: dict[str, int], min_labels: int, min_heldout: int) -> None:
    """InputError (one line) when the footage gives too few pseudo-labels or held-out person-frames."""
    if counts.get("person_frames", 0) == 0:
        raise InputError("no people were found in the footage: nothing to adapt to")
    if counts.get("below_min_size", 0) == counts["person_frames"]:
        raise InputError(
            f"every person in the footage is below {MIN_SUPPORTED_SIZE} px (the smallest resolution range): nothing to adapt to"
        )
    why = ", ".join(f"{r} {counts.get(r, 0)}" for r in REASONS if counts.get(r, 0))
    if counts.get("labels", 0) < min_labels:
        raise InputError(
            f"too few usable people: {counts.get('labels', 0)} trustworthy person-frames (need {min_labels}) out of "
            f"{counts.get('train_frames', 0)} in the training part (rejected: {why or 'none'}); give more or longer footage"
        )
    if counts.get("heldout", 0) < min_heldout:
        raise InputError(
            f"too few usable people in the held-out part: {counts.get('heldout', 0)} person-frames with trustworthy keypoints "
            f"(need {min_heldout}); give more footage or a larger --val-fraction"
        )


def settings_of(flt: LabelFilter, **more: object) -> dict:
    """The settings a cached label file must match (filter and collection options)."""
    return {**asdict(flt), **more}
