"""The video pipeline as one generator loop over injected parts:

    decode -> detect (every ``det_stride``-th frame) -> track -> crop + range -> RSC-Net (batched
    over people and ``batch_frames`` frames) -> temporal GRU (online, one hidden state per track)
    -> body model -> ``FrameResult``

Memory is bounded: at most ``batch_frames + 3 det_stride + 2`` decoded frames are held (the batch,
and the frames decoded and detected ahead in ``lrpose.background``), plus one GRU state per live track.
Consumers (``lrpose.video``) write tracks and the overlay as results stream out. The image
command uses the same estimation step (``Pipeline.estimate_image``: one person, track 0, frame 0).
"""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from lrpose.background import ahead
from lrpose.body import BodyModel
from lrpose.body_geometry import body_geometry, square_centres
from lrpose.config import check_minimums
from lrpose.crops import BOX_SCALE, check_box_scale, crop_person, validate_box
from lrpose.detect import Detector
from lrpose.device import device_of, host, synchronize, upload
from lrpose.errors import InputError
from lrpose.facing import body_faces_camera, keypoint_facing, turn_around
from lrpose.fit_carry import FitCarry
from lrpose.geometry import cam_crop_to_full, cam_full_to_crop, focal_for
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalModule
from lrpose.refine import Refiner
from lrpose.resolution import select_range
from lrpose.track import SortTracker, Tracker
from lrpose.types import Detections, Frame, FrameResult, PoseEstimate, TrackedBox

DETECTIONS_PER_SECOND = 7.5
"""Automatic ``--det-stride``: detector runs per second of video (15 fps: every 2nd frame, 30 fps: every 4th)."""
FAST_DETECTIONS_PER_SECOND = 3.75
"""The same with ``--fast`` (15 fps: every 4th frame)."""


def auto_stride(fps: float, max_gap: int, per_second: float = DETECTIONS_PER_SECOND) -> int:
    """The automatic detector stride for a ``fps`` video: about ``per_second`` runs a second, at most
    ``max_gap`` (a missed detection must not end a track)."""
    return int(max(1, min(round(fps / per_second), max(max_gap, 1))))


@dataclass(frozen=True)
class PipelineConfig:
    """Options of the per-video loop."""

    det_stride: int = 0
    """Run the detector on every k-th frame; the tracker predicts the boxes in between (0: automatic,
    ``auto_stride``: about ``detections_per_second`` detector runs per second of video)."""
    detections_per_second: float = DETECTIONS_PER_SECOND
    """With the automatic stride (``FAST_DETECTIONS_PER_SECOND`` with ``--fast``)."""
    max_gap: int = 10
    """Frames a person may go undetected before the track ends (bridged by the tracker)."""
    batch_frames: int = 8
    """Frames whose crops go through RSC-Net in one batch."""
    detect_ahead: bool = True
    """Decode and detect in a background thread, ahead of the estimation (``lrpose.background``)."""
    box_scale: float = BOX_SCALE
    """Side of the square crop / the person box's longer side (``--box-scale``; 1.0: the box as it is)."""

    def __post_init__(self) -> None:
        check_minimums(self, det_stride=0, max_gap=0, batch_frames=1, detections_per_second=0.01)
        check_box_scale(self.box_scale)
        if self.det_stride > 1 and self.max_gap < self.det_stride:
            raise InputError(
                f"--max-gap ({self.max_gap}) must be at least --det-stride ({self.det_stride}): one missed detection would end a track"
            )


class StageTimer:
    """Wall seconds per named stage (decode, detect, track, crop, network, temporal, body, ...); with a CUDA
    ``device`` each stage ends by waiting for the device's queued work, so the GPU time lands in the stage that
    queued it (up to what the other thread queued meanwhile: decode + detect run beside the estimation)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.device = device

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device is not None:
                synchronize(self.device)
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
Pending = tuple[Frame, list[TrackedBox], bool]
"""A frame waiting for the estimation step: (frame, its tracked boxes, whether the detector ran)."""


def _safe_box(box: np.ndarray) -> np.ndarray:
    """A predicted box can collapse: keep at least 2 px in each direction around its centre."""
    if box[2] - box[0] >= 2.0 and box[3] - box[1] >= 2.0:
        return box
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = max(float(box[2] - box[0]), 2.0), max(float(box[3] - box[1]), 2.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class Pipeline:
    """``Pipeline(model, body, detector, temporal, config).run(frames, fps) -> Iterator[FrameResult]``.

    ``temporal`` None gives per-frame results (``--no-temporal``); ``detector`` may be None when
    only ``estimate_image`` is used. ``device`` (None: the model's) runs RSC-Net, the GRU, the body and the
    keypoint fit: model and GRU are moved there, the body is copied there (``body`` itself stays where it
    is, for the writers and renderers), crops go up and results come back once per batch.
    """

    def __init__(
        self,
        model: RSCNet,
        body: BodyModel,
        detector: Detector | None = None,
        temporal: TemporalModule | None = None,
        config: PipelineConfig | None = None,
        timer: StageTimer | None = None,
        refiner: Refiner | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.device = dev = device_of(model) if device is None else torch.device(device)
        self.model, self.body, self.detector = model.to(dev).eval(), body, detector
        self.temporal = temporal.to(dev) if temporal is not None else None
        self.device_body = body if device_of(body) == dev else copy.deepcopy(body).to(dev)
        """The body model on ``device`` (``body`` itself when it is there already)."""
        if refiner is not None and device_of(refiner.body) != dev:
            refiner = refiner.on(self.device_body if refiner.body is body else copy.deepcopy(refiner.body).to(dev))
        self.refiner = refiner
        self._anchors: dict[int, torch.Tensor] = {}
        """Per track: the last refined frame's fit (``RefineResult.anchors``), for the temporal term."""
        self._anchor_frames: dict[int, int] = {}
        """Per track: the frame of its anchor."""
        self._facing: dict[int, torch.Tensor] = {}
        """Per track: its keypoints' facing evidence so far (``lrpose.facing``), for the front/back choice."""
        self._carry = FitCarry()
        """Per track: how its last fit changed the network's estimate, for the frames between detector runs."""
        self.config = config or PipelineConfig()
        self.timer = timer or StageTimer(dev if dev.type == "cuda" else None)

    def run(self, frames: Iterable[Frame], fps: float, tracker: Tracker | None = None) -> Iterator[FrameResult]:
        """Every stage in one streaming loop; results come out in frame order."""
        cfg, timer = self.config, self.timer
        tracker = tracker or SortTracker(fps, cfg.max_gap)
        states: dict[int, torch.Tensor] = {}
        self._anchors, self._facing, self._carry = {}, {}, FitCarry()
        pending: list[Pending] = []
        stride = cfg.det_stride or auto_stride(fps, cfg.max_gap, cfg.detections_per_second)
        detections = self._detect(frames, stride)
        for frame, dets, detected in ahead(detections, 2 * stride + 2) if cfg.detect_ahead else detections:
            with timer("track"):
                boxes = tracker.update(dets, frame.index)
            pending.append((frame, boxes, detected))
            # a batch ends on a detected frame, so the frames before it lie between two fits (``lrpose.fit_carry``)
            if len(pending) >= cfg.batch_frames and (detected or len(pending) >= cfg.batch_frames + stride):
                yield from self.estimate(pending, states)
                pending = []
        if pending:
            yield from self.estimate(pending, states)

    def _detect(self, frames: Iterable[Frame], stride: int) -> Iterator[tuple[Frame, Detections | None, bool]]:
        """Decode and detect (every ``stride``-th frame): (frame, detections or None, whether the detector ran)."""
        for frame in self.timer.iterate("decode", frames):
            detected = frame.index % stride == 0
            with self.timer("detect"):
                dets = self.detector(frame.image, frame.index) if detected else None
            yield frame, dets, detected

    def estimate_image(self, image: np.ndarray, box_xyxy: np.ndarray | None = None, keypoints: np.ndarray | None = None) -> PoseEstimate:
        """One person in an (H, W, 3) uint8 RGB image, as track 0 of frame 0: the person in
        ``box_xyxy`` (``[x1, y1, x2, y2]`` pixels, padded ``config.box_scale``), or the whole image as a person-centred
        crop; ``keypoints`` (17, 3) COCO-17 of that person, if known (fitted when there is a refiner)."""
        h, w = image.shape[:2]
        if box_xyxy is None:
            box, scale = np.array([0.0, 0.0, w, h]), 1.0
        else:
            box, scale = validate_box(box_xyxy, w, h), self.config.box_scale
        pending = [(Frame(0, image, 0.0), [TrackedBox(0, 0, box, 1.0, True, keypoints)], True)]
        saved = (self._anchors, self._facing, self._carry)
        self._anchors, self._facing, self._carry = {}, {}, FitCarry()  # an image has no past
        try:
            return next(self.estimate(pending, {}, scale)).people[0]
        finally:
            self._anchors, self._facing, self._carry = saved

    @torch.no_grad()
    def estimate(self, pending: list[Pending], states: dict[int, torch.Tensor], scale: float | None = None) -> Iterator[FrameResult]:
        """The estimation step: crop + range -> RSC-Net -> temporal module (``states``: GRU state per
        track, updated) -> body, for ``pending`` (frame, tracked boxes, detector ran) tuples; boxes
        padded ``scale`` (None: ``config.box_scale``)."""
        timer, size, dev = self.timer, self.model.config.input_size, self.device
        scale = self.config.box_scale if scale is None else scale
        with timer("crop"):
            crops = [crop_person(frame.image, _safe_box(b.box_xyxy), size, scale) for frame, boxes, _ in pending for b in boxes]
            pixels, squares = [c[0] for c in crops], [c[1] for c in crops]
            ranges = [select_range(sq.side) for sq in squares]
        if not pixels:
            for frame, _, detected in pending:
                states.clear()
                yield FrameResult(frame, [], detected)
            return
        with timer("network"):
            out = self.model(upload(torch.stack(pixels), dev), torch.tensor(ranges, device=dev))
        rotmats, betas, cam = out.rotmats, out.betas, out.cam
        if self.temporal is not None:
            with timer("temporal"):
                rotmats, betas, cam = self._smooth(pending, states, out)
        h, w = pending[0][0].image.shape[:2]
        boxes = [b for _, bs, _ in pending for b in bs]
        keypoints = np.stack([b.keypoints if b.keypoints is not None else np.full((17, 3), np.nan, np.float32) for b in boxes])
        fit = None
        if self.refiner is not None and np.isfinite(keypoints).all(-1).any():
            with timer("refine"):
                rotmats, betas, cam, fit = self._refine(boxes, squares, rotmats, betas, cam, keypoints, w, h)
        elif self.refiner is not None and (self._facing or self._carry.corrections):  # no keypoints in this batch (--det-stride):
            with timer("refine"):  # the tracks' last fits and facing still hold (per-row bookkeeping: on the host)
                none = torch.zeros(len(boxes), dtype=torch.bool, device="cpu")
                ids, frames, net_rot, net_cam = [b.track_id for b in boxes], [b.frame_index for b in boxes], rotmats.cpu(), cam.cpu()
                rot, cam_h, carried = self._carry.run(ids, frames, none, ~none, net_rot, net_rot, net_cam, net_cam)
                said = torch.stack([self._facing.get(b.track_id, torch.tensor(0.0, device="cpu")) for b in boxes])
                rotmats, cam = upload(self._turn_unfitted(rot, said, carried), dev), upload(cam_h, dev)
        with timer("body"):
            g = body_geometry(self.device_body, rotmats, betas, cam, squares, size, w, h)
        feats, rot_np, betas_np, cam_np = host(out.features, rotmats, betas, cam)
        residuals = host(torch.stack([fit.residual_before, fit.residual_after], 1))[0].astype(np.float32) if fit is not None else None
        k = 0
        for frame, frame_boxes, detected in pending:
            people = []
            for b in frame_boxes:
                people.append(
                    PoseEstimate(
                        track_id=b.track_id, frame_index=frame.index, box_xyxy=b.box_xyxy, observed=b.observed, crop=squares[k],
                        range_index=ranges[k], pose=g.pose[k], rotmats=rot_np[k], betas=betas_np[k], pred_cam=cam_np[k],
                        orig_cam=g.orig_cam[k], trans=g.trans[k], joints3d=g.joints3d[k], joints2d=g.joints2d[k],
                        vertices=g.vertices[k], features=feats[k], keypoints2d=keypoints[k].astype(np.float32),
                        refined=bool(fit.refined[k]) if fit is not None else False,
                        kp_residual=residuals[k] if residuals is not None else np.full(2, np.nan, np.float32),
                    )
                )  # fmt: skip
                k += 1
            yield FrameResult(frame, people, detected)

    def _refine(self, boxes, squares, rotmats, betas, cam, keypoints, w, h):  # noqa: ANN001, ANN202
        """Fit the bodies to the detector keypoints (``lrpose.refine``) on the pipeline's device; returns rotations, crop cameras
        and the fit. The per-row bookkeeping (facing, anchors, the carry to frames without keypoints) runs on the host."""
        focal, dev = focal_for(w, h), self.device
        n = len(squares)
        center, side = square_centres(squares, dev)
        size = torch.tensor([[float(w), float(h)]], device=dev).expand(n, 2)
        trans = cam_crop_to_full(cam, center, side, size, torch.full((n,), focal, device=dev))
        heights = torch.tensor([max(float(b.box_xyxy[3] - b.box_xyxy[1]), 2.0) for b in boxes], device="cpu")
        kp = torch.nan_to_num(torch.from_numpy(keypoints).float())
        cfg = self.refiner.config
        said = keypoint_facing(kp[..., :2], torch.where(kp[..., 2] >= cfg.min_conf, kp[..., 2], 0.0), heights)
        has_kp = torch.from_numpy(np.isfinite(keypoints).all(-1).any(-1))
        previous, last, last_kp = [], {}, {}
        carry, gaps = torch.full((n, 17, 4), float("nan"), device="cpu"), torch.ones(n, device="cpu")
        for k, b in enumerate(boxes):  # boxes come frame by frame, in order
            # the track's previous frame with keypoints (frames between detector runs have none)
            previous.append(last_kp.get(b.track_id, -1))
            if previous[-1] >= 0:
                gaps[k] = b.frame_index - boxes[previous[-1]].frame_index
            elif b.track_id in self._anchors:
                carry[k], gaps[k] = self._anchors[b.track_id], b.frame_index - self._anchor_frames[b.track_id]
            # which way the track faces: its keypoints' evidence, accumulated over the frames where the person is tall
            # enough for the detector's left/right labels (kept through the others)
            before = said[last[b.track_id]] if b.track_id in last else self._facing.get(b.track_id)
            if float(said[k]) == 0.0 or heights[k] < cfg.min_height:
                said[k] = 0.0 if before is None else before
            elif before is not None:
                said[k] = cfg.facing_memory * before + (1.0 - cfg.facing_memory) * said[k]
            last[b.track_id] = k
            if bool(has_kp[k]):
                last_kp[b.track_id] = k
        fit = self.refiner.fit(
            rotmats, betas, trans, upload(torch.from_numpy(keypoints), dev), upload(heights, dev), focal,
            torch.tensor([w / 2 - 0.5, h / 2 - 0.5], device=dev), torch.tensor(previous, dtype=torch.long, device=dev), upload(carry, dev),
            upload(said, dev), upload(gaps, dev),
        )  # fmt: skip
        refined, anchors = fit.refined.cpu(), fit.anchors.cpu()
        self._facing = {i: said[k] for i, k in last.items()}
        self._anchors = {i: a for i, a in self._anchors.items() if i in last}  # live tracks appear in every batch
        for track_id, k in last_kp.items():  # a track's last frame with keypoints anchors its next one, if it was fitted
            if bool(refined[k]):
                self._anchors[track_id], self._anchor_frames[track_id] = anchors[k], boxes[k].frame_index
            else:
                self._anchors.pop(track_id, None)
        new_cam = cam_full_to_crop(fit.trans, center, side, size, torch.full((n,), focal, device=dev))
        fit_cam = torch.where(fit.refined[:, None], new_cam, cam)
        ids, frames = [b.track_id for b in boxes], [b.frame_index for b in boxes]
        rot, fit_cam, carried = self._carry.run(ids, frames, refined, ~has_kp, rotmats.cpu(), fit.rotmats.cpu(), cam.cpu(), fit_cam.cpu())
        rot = self._turn_unfitted(rot, said, refined | carried)
        return upload(rot, dev), fit.betas if bool(refined.any()) else betas, upload(fit_cam, dev), fit

    def _turn_unfitted(self, rot: torch.Tensor, said: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
        """Bodies not fitted (too small, too few keypoints, a fit that did not help, or no keypoints in this
        batch) keep the network's pose, turned round where the track's keypoints (``said``, seen while
        the person was tall enough) clearly say it faces the other way."""
        wrong = ~refined & (said.abs() >= self.refiner.config.facing_clear) & (body_faces_camera(rot[:, 0]) != (said > 0))
        return torch.where(wrong[:, None, None, None], turn_around(rot), rot) if bool(wrong.any()) else rot

    def _smooth(self, pending: list[Pending], states: dict[int, torch.Tensor], out) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The temporal module, online: each track's run of consecutive frames continues its state (a track
        missing from a frame starts again from zeros); all runs of the batch in one call."""
        runs: list[tuple[int, list[int], bool]] = []  # (track id, its rows, starts at the batch's first frame)
        open_runs: dict[int, tuple[int, list[int], bool]] = {}
        row = 0
        for f, (_, boxes, _) in enumerate(pending):
            ids = {b.track_id for b in boxes}
            runs += [open_runs.pop(i) for i in list(open_runs) if i not in ids]
            for b in boxes:
                open_runs.setdefault(b.track_id, (b.track_id, [], f == 0))[1].append(row)
                row += 1
        last = list(open_runs.values())  # the runs that reach the batch's last frame carry their state on
        runs += last
        cfg = self.temporal.config
        zero = torch.zeros(cfg.layers, 1, cfg.hidden, device=self.device)
        start = torch.cat([states.get(i, zero) if first else zero for i, _, first in runs], 1)
        rot, betas, cam, final = self.temporal.sequences([out.features[rows] for _, rows, _ in runs], start)
        order = torch.tensor([r for _, rows, _ in runs for r in rows], device=self.device)
        rotmats, betas_out, cam_out = out.rotmats.clone(), out.betas.clone(), out.cam.clone()
        rotmats[order], betas_out[order], cam_out[order] = rot, betas, cam
        states.clear()
        states.update({i: final[:, len(runs) - len(last) + k : len(runs) - len(last) + k + 1] for k, (i, _, _) in enumerate(last)})
        return rotmats, betas_out, cam_out
