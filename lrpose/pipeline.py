"""The video pipeline as one generator loop over injected parts:

    decode -> detect (every ``det_stride``-th frame) -> track -> crop + range -> RSC-Net (batched
    over people and ``batch_frames`` frames) -> temporal GRU (online, one hidden state per track)
    -> body model -> ``FrameResult``

Memory is bounded: at most ``batch_frames`` decoded frames are held, plus one GRU state per live
track. Consumers (``lrpose.video``) write tracks and the overlay as results stream out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.crops import crop_person
from lrpose.detect import Detector
from lrpose.estimate import body_geometry
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalModule
from lrpose.resolution import select_range
from lrpose.track import SortTracker, Tracker
from lrpose.types import Frame, FrameResult, PoseEstimate, TrackedBox


@dataclass(frozen=True)
class PipelineConfig:
    """Options of the per-video loop."""

    det_stride: int = 1
    """Run the detector on every k-th frame; the tracker predicts the boxes in between."""
    max_gap: int = 10
    """Frames a person may go undetected before the track ends (bridged by the tracker)."""
    batch_frames: int = 4
    """Frames whose crops go through RSC-Net in one batch."""


class StageTimer:
    """Wall seconds per named stage (decode, detect, track, crop, network, temporal, body, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t0

    def iterate(self, stage: str, items: Iterable) -> Iterator:
        """Yield from ``items``, charging the time spent producing each item to ``stage``."""
        it = iter(items)
        while True:
            with self(stage):
                item = next(it, _END)
            if item is _END:
                return
            yield item


_END = object()


def _safe_box(box: np.ndarray) -> np.ndarray:
    """A predicted box can collapse: keep at least 2 px in each direction around its centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = max(float(box[2] - box[0]), 2.0), max(float(box[3] - box[1]), 2.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class Pipeline:
    """``Pipeline(model, body, detector, temporal, config).run(frames, fps) -> Iterator[FrameResult]``.

    ``temporal`` None gives per-frame results (``--no-temporal``).
    """

    def __init__(
        self,
        model: RSCNet,
        body: BodyModel,
        detector: Detector,
        temporal: TemporalModule | None = None,
        config: PipelineConfig | None = None,
        timer: StageTimer | None = None,
    ) -> None:
        self.model, self.body, self.detector, self.temporal = model.eval(), body, detector, temporal
        self.config = config or PipelineConfig()
        self.timer = timer or StageTimer()

    def run(self, frames: Iterable[Frame], fps: float, tracker: Tracker | None = None) -> Iterator[FrameResult]:
        cfg, timer = self.config, self.timer
        tracker = tracker or SortTracker(fps, cfg.max_gap)
        states: dict[int, torch.Tensor] = {}
        pending: list[tuple[Frame, list[TrackedBox], bool]] = []
        for frame in timer.iterate("decode", frames):
            detected = frame.index % cfg.det_stride == 0
            with timer("detect"):
                dets = self.detector(frame.image, frame.index) if detected else None
            with timer("track"):
                boxes = tracker.update(dets, frame.index)
            pending.append((frame, boxes, detected))
            if len(pending) >= cfg.batch_frames:
                yield from self._estimate(pending, states)
                pending = []
        if pending:
            yield from self._estimate(pending, states)

    @torch.no_grad()
    def _estimate(self, pending: list[tuple[Frame, list[TrackedBox], bool]], states: dict[int, torch.Tensor]) -> Iterator[FrameResult]:
        timer, size = self.timer, self.model.config.input_size
        with timer("crop"):
            pixels, squares, ranges = [], [], []
            for frame, boxes, _ in pending:
                for b in boxes:
                    px, sq = crop_person(frame.image, _safe_box(b.box_xyxy), size)
                    pixels.append(px)
                    squares.append(sq)
                    ranges.append(select_range(sq.side))
        if not pixels:
            for frame, _, detected in pending:
                states.clear()
                yield FrameResult(frame, [], detected)
            return
        with timer("network"):
            out = self.model(torch.stack(pixels), torch.tensor(ranges))
        rotmats, betas, cam = out.rotmats, out.betas, out.cam
        if self.temporal is not None:
            with timer("temporal"):
                rotmats, betas, cam = rotmats.clone(), betas.clone(), cam.clone()
                start = 0
                for _, boxes, _ in pending:
                    ids = [b.track_id for b in boxes]
                    for gone in set(states) - set(ids):
                        del states[gone]
                    if ids:
                        rows = slice(start, start + len(ids))
                        zero = torch.zeros(self.temporal.config.layers, 1, self.temporal.config.hidden)
                        h0 = torch.cat([states.get(i, zero) for i in ids], 1)  # a new track starts from zeros
                        t = self.temporal(out.features[rows][:, None], h0)
                        rotmats[rows], betas[rows], cam[rows] = t.rotmats[:, 0], t.betas[:, 0], t.cam[:, 0]
                        for k, i in enumerate(ids):
                            states[i] = t.state[:, k : k + 1]
                    start += len(ids)
        with timer("body"):
            h, w = pending[0][0].image.shape[:2]
            g = body_geometry(self.body, rotmats, betas, cam, squares, size, w, h)
        feats, betas_np, cam_np = out.features.numpy(), betas.numpy(), cam.numpy()
        k = 0
        for frame, boxes, detected in pending:
            people = []
            for b in boxes:
                people.append(
                    PoseEstimate(
                        track_id=b.track_id, frame_index=frame.index, box_xyxy=b.box_xyxy, observed=b.observed,
                        native_size=squares[k].side, range_index=ranges[k], pose=g.pose[k], betas=betas_np[k],
                        pred_cam=cam_np[k], orig_cam=g.orig_cam[k], trans=g.trans[k], joints3d=g.joints3d[k],
                        joints2d=g.joints2d[k], vertices=g.vertices[k], features=feats[k],
                    )
                )  # fmt: skip
                k += 1
            yield FrameResult(frame, people, detected)
