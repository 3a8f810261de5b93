"""How much each remaining difference from the official demos' preprocessing changes the output.

Run by hand: ``python benchmarks/demo_differences.py [--weights weights/lrpose_rscnet.pt]``; it
prints the README table's numbers. Each row builds the network input the lrpose way and the
official way on ``examples/person_64px.png`` (or a scene made from it), changing one thing only,
and reports the input difference (mean |d| in 0-255 of the network input) and the output
difference: largest joint-rotation angle (deg, 24 joints), largest |d betas|, and the mean
distance of the 14 root-relative LSP joints (mm, stand-in body). The official side is written
from the demos' code (RSC-Net ``demo.py``, SPIN ``utils/imutils.crop``): ``scipy.misc.imresize``
is Pillow resampling of uint8, after scipy's ``bytescale`` contrast stretch when the array is float.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from lrpose.body import load_body
from lrpose.crops import SquareCrop, cut_square, normalize, resize_square, square_from_box
from lrpose.models.checkpoint import load_rscnet
from lrpose.resolution import bytescale, select_range
from lrpose.training.evaluation import eval_joints

ROOT = Path(__file__).resolve().parent.parent


def imresize(arr: np.ndarray, size: tuple[int, int], interp: int = Image.Resampling.BILINEAR) -> np.ndarray:
    """``scipy.misc.imresize(arr, (h, w))``: float arrays are byte-scaled first; Pillow resampling."""
    data = arr if arr.dtype == np.uint8 else bytescale(arr)
    return np.asarray(Image.fromarray(data).resize((size[1], size[0]), interp))


def spin_crop(img: np.ndarray, sq: SquareCrop, res: int) -> np.ndarray:
    """SPIN's ``crop``: the square pasted into a float canvas, then ``imresize`` (bilinear, contrast stretch)."""
    canvas = cut_square(img, sq).astype(np.float64)
    return imresize(canvas, (res, res))


def truncated_square(box: np.ndarray, scale: float) -> SquareCrop:
    """The square of ``square_from_box`` with its corner truncated toward zero (SPIN) instead of rounded."""
    side = max(1, int(round(scale * max(box[2] - box[0], box[3] - box[1]))))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return SquareCrop(int(cx - side / 2), int(cy - side / 2), side)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "lrpose_rscnet.pt")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, info = load_rscnet(args.weights)
    body = load_body()
    size = model.config.input_size
    base = cv2.cvtColor(cv2.imread(str(ROOT / "examples" / "person_64px.png")), cv2.COLOR_BGR2RGB)

    @torch.no_grad()
    def run(pixels: np.ndarray, range_index: int):  # noqa: ANN202
        out = model(normalize(pixels)[None], range_index)
        posed = body(out.rotmats[:, 1:], out.rotmats[:, 0], out.betas)
        return out.rotmats[0], out.betas[0], eval_joints(body, posed.vertices, torch.tensor([False]))[0]

    def row(name: str, ours: np.ndarray, theirs: np.ndarray, r_ours: int, r_theirs: int) -> None:
        ra, ba, ja = run(ours, r_ours)
        rb, bb, jb = run(theirs, r_theirs)
        rel = ra.transpose(-1, -2) @ rb
        angle = torch.rad2deg(torch.arccos(((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))).max()
        pix = np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).mean()
        mm = float((ja - jb).norm(dim=-1).mean()) * 1000
        print(f"| {name} | {pix:.1f} | {float(angle):.1f} | {float((ba - bb).abs().max()):.3f} | {mm:.1f} |")

    print(f"checkpoint {info.checkpoint_id}, network input {size} px, body {body.body_id}")
    print("| difference | input mean abs diff (0-255) | max joint rotation diff (deg) | max abs betas diff | mean joint diff (mm) |")
    print("| --- | --- | --- | --- | --- |")
    # 1. the RSC-Net demo on a non-square image (the example without its top and bottom 2 rows: 60 x 64)
    wide = base[2:62]
    pad = resize_square(cut_square(wide, square_from_box(np.array([0.0, 0.0, 64.0, 60.0]), 1.0)), size)
    squash = imresize(wide, (size, size))
    row("squash to a square (RSC-Net demo) vs pad to a square, 60x64 image", pad, squash, 2, 2)
    row("range from the height (60 px: range 3) vs the longer side (64 px: range 2)", pad, pad, 2, 3)
    # 2-4. a person box in a scene: the example enlarged to 96 px in a 160 px grey image
    scene = np.full((160, 160, 3), 110, np.uint8)
    scene[32:128, 32:128] = cv2.resize(base, (96, 96), interpolation=cv2.INTER_CUBIC)
    box = np.array([32.0, 32.0, 128.0, 128.0])
    sq = square_from_box(box, 1.0)
    ours = resize_square(cut_square(scene, sq), size)
    r = select_range(sq.side)
    row("imresize bilinear + contrast stretch (SPIN crop) vs OpenCV area, 96 px box", ours, spin_crop(scene, sq, size), r, r)
    row("  of which bilinear alone (no stretch)", ours, imresize(cut_square(scene, sq), (size, size)), r, r)
    off = box + 0.6
    a, b = square_from_box(off, 1.0), truncated_square(off, 1.0)
    print(f"<!-- box {off.tolist()}: rounded corner ({a.x0}, {a.y0}), truncated ({b.x0}, {b.y0}) -->")
    row("corner truncated (SPIN) vs rounded, box at x.6", resize_square(cut_square(scene, a), size),
        resize_square(cut_square(scene, b), size), r, r)  # fmt: skip
    padded = square_from_box(box, 1.2)
    row("box as given (bbox file, --box-scale 1.0) vs padded 1.2x", resize_square(cut_square(scene, padded), size), ours,
        select_range(padded.side), r)  # fmt: skip


if __name__ == "__main__":
    main()
