"""Contact sheets of synthetic data (``lrpose synth --preview``): crops or first clip frames with their visible 2D keypoints."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lrpose.errors import InputError
from lrpose.files import save_png


def preview(out: Path, kind: str, max_items: int = 16) -> Path:
    """Contact sheet ``out/preview.png``: samples with their visible 2D keypoints drawn."""
    out = Path(out)
    tiles = []
    if kind == "crops":
        for shard in sorted(out.glob("crops_*.npz")):
            with np.load(shard) as z:
                for img, part in zip(z["images"], z["part"], strict=True):
                    tiles.append(_draw_points(img, part))
                    if len(tiles) >= max_items:
                        break
            if len(tiles) >= max_items:
                break
    else:
        import av

        for npz in sorted(out.glob("clip_*.npz"))[:max_items]:
            with av.open(str(npz.with_suffix(".mp4"))) as container:
                first = next(container.decode(video=0)).to_ndarray(format="rgb24")
            with np.load(npz) as z:
                img = first
                for i in range(z["boxes"].shape[1]):
                    if z["present"][0, i]:
                        x1, y1, x2, y2 = z["boxes"][0, i].astype(int)
                        img = cv2.rectangle(img.copy(), (x1, y1), (x2, y2), (255, 255, 0), 1)
                        img = _draw_points(img, z["part"][0, i])
            tiles.append(img)
    if not tiles:
        raise InputError(f"nothing to preview in {out}")
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    h, w = tiles[0].shape[:2]
    sheet = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, tile in enumerate(tiles):
        sheet[(k // cols) * h : (k // cols + 1) * h, (k % cols) * w : (k % cols + 1) * w] = tile
    save_png(out / "preview.png", sheet)
    return out / "preview.png"


def _draw_points(img: np.ndarray, part: np.ndarray) -> np.ndarray:
    img = img.copy()
    for x, y, vis in part:
        if vis > 0:
            cv2.circle(img, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
    return img
