"""Person box -> square, network-ready crop, and the affine back to image pixels.

Conventions: pixel centres sit at integer coordinates (OpenCV). A box ``[x1, y1, x2, y2]`` becomes a
square of side ``scale * max(w, h)`` around its centre (``--box-scale``, default ``BOX_SCALE`` = 1.2,
pads the box like SPIN's ``scale * 200 * 1.2`` bounding-box convention for keypoint-derived boxes,
leaving room for limbs outside tight boxes; 1.0 uses the box as it is, like the official demos do
with a bbox file). The corners are rounded to whole pixels (``square_from_box``). The square is cut
at the source resolution, zero-padded where it leaves the image (never shifted, so the person stays
centred), then resized to the network size S: bicubic when enlarging, area averaging when shrinking
(no aliasing). Pixels are ImageNet-normalised. What differs from the official demos is listed in
the README ("Differences from the official demos").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lrpose.errors import InputError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
BOX_SCALE = 1.2
"""Default ``--box-scale``: the square's side is this times the box's longer side."""
MIN_BOX_SCALE, MAX_BOX_SCALE = 0.5, 4.0


@dataclass(frozen=True)
class SquareCrop:
    """A square region of the source image, in source pixels."""

    x0: int
    """Left column of the square (may be negative: padded)."""
    y0: int
    """Top row of the square (may be negative: padded)."""
    side: int
    """Side in source pixels (the crop's native size)."""

    def box_xyxy(self) -> np.ndarray:
        """(4,) the square as ``[x1, y1, x2, y2]`` (x2, y2 exclusive)."""
        return np.array([self.x0, self.y0, self.x0 + self.side, self.y0 + self.side], np.float64)

    def crop_to_image(self, out_size: int) -> np.ndarray:
        """(2, 3) affine: crop pixel (u, v) in an ``out_size`` square -> image pixel (x, y)."""
        k = self.side / out_size
        # crop pixel centre u covers source [x0 + u k, x0 + (u + 1) k): its centre is x0 + (u + 0.5) k - 0.5
        return np.array([[k, 0.0, self.x0 + 0.5 * k - 0.5], [0.0, k, self.y0 + 0.5 * k - 0.5]])


def validate_box(box_xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Check a user box against a ``width`` x ``height`` image and clip it to the image (a huge box
    must not become a huge crop); InputError when unusable."""
    box = np.asarray(box_xyxy, np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(f"invalid box {box.tolist()}: need four numbers x1,y1,x2,y2 with x2 > x1 and y2 > y1")
    if box[0] >= width or box[1] >= height or box[2] <= 0 or box[3] <= 0:
        raise InputError(f"box {box.tolist()} (x1,y1,x2,y2 in pixels) lies outside the {width}x{height} image")
    return np.array([max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)), min(box[3], float(height))])


def parse_box(text: str | None, width: int, height: int, warn: Callable[[str], None] | None = None) -> np.ndarray | None:
    """``--box`` text ``x1,y1,x2,y2`` (corners in pixels) -> a checked (4,) box clipped to a ``width`` x
    ``height`` image (``warn`` gets one line when it had to be clipped); None stays None."""
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or not (vals[2] > vals[0] and vals[3] > vals[1]):
        raise InputError(f"--box must be x1,y1,x2,y2 (corners in pixels) with x2 > x1 and y2 > y1, got '{text}'")
    box = validate_box(np.array(vals), width, height)
    if warn is not None and not np.array_equal(box, vals):
        warn(f"note: --box {text} reaches past the {width}x{height} image; clipped to {','.join(f'{v:g}' for v in box)}")
    return box


def check_box_scale(scale: float) -> float:
    """``--box-scale`` checked (InputError outside [0.5, 4])."""
    if not (MIN_BOX_SCALE <= scale <= MAX_BOX_SCALE):
        raise InputError(f"--box-scale must be between {MIN_BOX_SCALE} and {MAX_BOX_SCALE}, got {scale}")
    return float(scale)


def square_from_box(box_xyxy: np.ndarray, scale: float = BOX_SCALE) -> SquareCrop:
    """Square around the box centre with side ``scale * max(w, h)`` (at least 1 px).

    Corner convention (pixel centres at integer coordinates, ``x2``/``y2`` the box's far edges):
    ``side = max(1, round(scale * max(x2 - x1, y2 - y1)))``, centre ``cx = (x1 + x2) / 2``, and the
    first column ``x0 = round(cx - side / 2)`` (likewise ``y0``), Python's ``round`` (halves to even).
    The crop holds columns ``x0 .. x0 + side - 1``. SPIN's ``crop`` truncates the corners toward zero
    instead (``astype(int)``), at most one pixel away; see the README's differences table."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
        raise ValueError(f"invalid box {list(box_xyxy)}: need x2 > x1 and y2 > y1")
    side = max(1, int(round(scale * max(x2 - x1, y2 - y1))))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return SquareCrop(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side)


def cut_square(image: np.ndarray, sq: SquareCrop) -> np.ndarray:
    """(side, side, 3) uint8 region of ``image`` (H, W, 3), zero where it leaves the image."""
    h, w = image.shape[:2]
    out = np.zeros((sq.side, sq.side, image.shape[2]), image.dtype)
    xa, ya = max(sq.x0, 0), max(sq.y0, 0)
    xb, yb = min(sq.x0 + sq.side, w), min(sq.y0 + sq.side, h)
    if xb > xa and yb > ya:
        out[ya - sq.y0 : yb - sq.y0, xa - sq.x0 : xb - sq.x0] = image[ya:yb, xa:xb]
    return out


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image to ``size``: bicubic when enlarging, area averaging when shrinking."""
    if img.shape[0] == size:
        return img.copy()
    interp = cv2.INTER_CUBIC if size > img.shape[0] else cv2.INTER_AREA
    return cv2.resize(img, (size, size), interpolation=interp)


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32 ImageNet-normalised."""
    x = (rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def crop_person(image: np.ndarray, box_xyxy: np.ndarray, out_size: int, scale: float = BOX_SCALE) -> tuple[torch.Tensor, SquareCrop]:
    """Network input (3, S, S) for the person in ``box_xyxy`` of ``image`` (H, W, 3 uint8 RGB), and its square."""
    sq = square_from_box(np.asarray(box_xyxy, np.float64), scale)
    h, w = image.shape[:2]
    inside = sq.x0 >= 0 and sq.y0 >= 0 and sq.x0 + sq.side <= w and sq.y0 + sq.side <= h
    region = image[sq.y0 : sq.y0 + sq.side, sq.x0 : sq.x0 + sq.side] if inside else cut_square(image, sq)  # a view: no copy of a huge crop
    return normalize(resize_square(region, out_size)), sq


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) points."""
    return points @ affine[:, :2].T + affine[:, 2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine."""
    a = np.vstack([affine, [0.0, 0.0, 1.0]])
    return np.linalg.inv(a)[:2]
