"""Detections consistent with the scene: a person's box height depends on where their feet are in
the image (a fixed camera over flat ground: farther people stand higher up and look smaller), so a
box far taller or shorter than the boxes seen before with their feet at a similar image height is a
false detection (HOG's "giants" over a road). Used for the HOG detector, whose false positives are
often of the wrong size; YOLO's are not.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from lrpose.types import Detections


class SceneSizeCheck:
    """Rejects boxes whose height differs more than ``max_ratio`` times from the median height of the
    accepted boxes (of earlier frames) whose bottom edge lies within ``band`` x image height of
    theirs; needs ``min_neighbours`` such boxes, else the box is accepted. Accepted boxes join the
    memory (the last ``memory`` ones)."""

    def __init__(self, max_ratio: float = 1.7, band: float = 0.08, min_neighbours: int = 5, memory: int = 400) -> None:
        self.max_ratio, self.band, self.min_neighbours = max_ratio, band, min_neighbours
        self.seen: deque[tuple[float, float]] = deque(maxlen=memory)
        """(foot y, height) of accepted boxes, pixels."""
        self.rejected = 0
        """Boxes rejected so far."""

    def expected_height(self, foot_y: float, image_height: int) -> float | None:
        """The median height of remembered boxes with their feet near ``foot_y``; None with too few."""
        near = [h for y, h in self.seen if abs(y - foot_y) <= self.band * image_height]
        return float(np.median(near)) if len(near) >= self.min_neighbours else None

    def __call__(self, dets: Detections, image_height: int) -> Detections:
        """``dets`` without the implausible boxes; the others are remembered."""
        boxes = dets.boxes_xyxy
        if len(boxes) == 0:
            return dets
        keep = np.ones(len(boxes), bool)
        for k, (_, y1, _, y2) in enumerate(boxes):
            expected = self.expected_height(float(y2), image_height)
            height = float(y2 - y1)
            if expected is not None and not (expected / self.max_ratio <= height <= expected * self.max_ratio):
                keep[k] = False
        self.rejected += int((~keep).sum())
        self.seen.extend((float(b[3]), float(b[3] - b[1])) for b in boxes[keep])
        kps = None if dets.keypoints is None else dets.keypoints[keep]
        return Detections(boxes[keep], dets.scores[keep], kps)
