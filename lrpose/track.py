"""Multi-person tracking behind one protocol (the only module importing motpy).

The tracker is motpy's ``MultiObjectTracker`` (MIT): a constant-velocity Kalman filter per
person, matched to detections by IoU (SORT-style). lrpose adds stable integer ids (in order of
first appearance), gap bridging (a person missed for up to ``max_gap`` frames keeps its track, its
box predicted by the filter) and frames without detection (``--det-stride``: the filter predicts).
Detector keypoints follow their detection: a track hit in a frame gets the keypoints of the
detection that overlaps its box most (each detection goes to one track).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np
from motpy import Detection, MultiObjectTracker

from lrpose.types import Detections, TrackedBox


class Tracker(Protocol):
    """``update(detections, frame_index)`` once per frame, in order; ``None`` = not detected this
    frame. Returns every live track's box; a track missing from the result has ended."""

    def update(self, detections: Detections | None, frame_index: int) -> list[TrackedBox]: ...


class SortTracker:
    """Kalman + IoU tracker (motpy). ``max_gap``: frames a person may go undetected before the
    track ends; ``min_iou``: overlap needed to continue a track (low for small, fast people)."""

    def __init__(self, fps: float, max_gap: int = 10, min_iou: float = 0.1) -> None:
        self.max_gap = max_gap
        dt = 1.0 / max(fps, 1e-3)
        self._mot = MultiObjectTracker(
            dt=dt,
            model_spec={"order_pos": 1, "dim_pos": 2, "order_size": 0, "dim_size": 2, "dt": dt},
            # motpy's own staleness rule (also applied to a track in its first frame) is only a backstop:
            # lrpose ends a track itself after more than max_gap frames without a detection
            tracker_kwargs={"max_staleness": max_gap + 3},
            matching_fn_kwargs={"min_iou": min_iou},
        )
        self._ids: dict[str, int] = {}
        self._positive: dict[str, int] = {}
        self._last_hit: dict[str, int] = {}
        self._last_detect = -1

    def update(self, detections: Detections | None, frame_index: int) -> list[TrackedBox]:
        if detections is None:
            for t in self._mot.trackers:  # no detector run: the filters predict, nobody gets staler
                t.predict()
        else:
            dets = [
                Detection(box=b.astype(np.float64), score=float(s)) for b, s in zip(detections.boxes_xyxy, detections.scores, strict=True)
            ]
            self._mot.step(detections=dets)
            self._last_detect = frame_index
        out = []
        ended = []
        hits: dict[str, np.ndarray] = {}
        for t in self._mot.trackers:
            if t.id not in self._ids:
                self._ids[t.id] = len(self._ids)
            if detections is not None:
                if t.steps_positive > self._positive.get(t.id, 0):  # matched (or born) this frame
                    self._last_hit[t.id] = frame_index
                    hits[t.id] = np.asarray(t.box(), np.float32)
                elif frame_index - self._last_hit[t.id] > self.max_gap:
                    ended.append(t)
                    continue
                self._positive[t.id] = t.steps_positive
            # between detector runs a track keeps the state of the last run
            observed = self._last_hit.get(t.id) == self._last_detect
            out.append(TrackedBox(self._ids[t.id], frame_index, np.asarray(t.box(), np.float32), float(t.score), observed))
        if detections is not None and detections.keypoints is not None and hits:
            out = _attach_keypoints(out, {self._ids[k]: v for k, v in hits.items()}, detections)
        self._mot.trackers = [t for t in self._mot.trackers if t not in ended]
        live = {t.id for t in self._mot.trackers}
        self._positive = {k: v for k, v in self._positive.items() if k in live}
        self._last_hit = {k: v for k, v in self._last_hit.items() if k in live}
        return sorted(out, key=lambda b: b.track_id)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) ``[x1, y1, x2, y2]`` boxes."""
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((hi - lo).clip(0), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def _attach_keypoints(boxes: list[TrackedBox], hit_boxes: dict[int, np.ndarray], dets: Detections) -> list[TrackedBox]:
    """Give each track hit this frame the keypoints of its best-overlapping detection (greedy, one
    detection per track, IoU >= 0.3)."""
    ids = sorted(hit_boxes)
    iou = _iou(np.stack([hit_boxes[i] for i in ids]), dets.boxes_xyxy) if len(dets.boxes_xyxy) else np.zeros((len(ids), 0))
    match: dict[int, int] = {}
    while iou.size and iou.max() >= 0.3:
        r, c = np.unravel_index(int(iou.argmax()), iou.shape)
        match[ids[r]] = int(c)
        iou[r, :], iou[:, c] = -1.0, -1.0
    return [replace(b, keypoints=dets.keypoints[match[b.track_id]]) if b.track_id in match else b for b in boxes]
