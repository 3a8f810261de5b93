"""Real people at low resolution: does the body face the way the person faces, bend where they bend?

  python benchmarks/eval_real_photos.py [--heights 128 64 48 32 24] [--out runs/real]
  python benchmarks/eval_real_photos.py --photo messi5.jpg --video vtest.avi --every 40 --heights 0 48 32 24

Photos of real people that installed packages ship (ultralytics' ``bus.jpg`` and ``zidane.jpg``,
matplotlib's ``grace_hopper.jpg``; used for checks only, never shipped), plus any ``--photo`` and every
``--every``-th frame of any ``--video`` (e.g. OpenCV's pedestrian clip ``vtest.avi`` and ``messi5.jpg``
from the Debian package ``opencv-doc``: people seen from behind and the side). The reference is YOLO11n-pose
on the full-resolution photo (people with confident shoulders and hips whose left/right order says
clearly which way they face). Each reference person is then shrunk so that their box is ``H`` px tall
(the whole photo downscaled with ``cv2.INTER_AREA`` and placed on a grey 640x480 canvas, like a CCTV
frame), detected again there, and estimated by ``Pipeline.estimate_image`` three ways: the network
alone, refined with the default ``RefineConfig`` and refined at every size (``min_height=0``).

Reported per height and method: facing (share of people whose body faces towards/away from the
camera as the reference's shoulders and hips say; also separately for the people facing towards and
away, since a network that always faces the camera scores the towards share), 2D error of the body's COCO keypoints to the
reference keypoints (confidence >= 0.5) in units of the box height, raw and after a 2D similarity
alignment ("shape": articulation only), the same for the mean pose facing the right way (what a body
that ignores the person gets), and the low-resolution detector's own keypoint error.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose.body import load_body
from lrpose.detect import YoloDetector
from lrpose.facing import body_faces_camera, keypoint_facing, turn_around
from lrpose.files import save_png
from lrpose.geometry import focal_for, rot6d_to_rotmat
from lrpose.models.checkpoint import default_mean_params, find_rscnet
from lrpose.pipeline import Pipeline
from lrpose.refine import RefineConfig, Refiner
from lrpose.render import render_overlay


def photos() -> dict[str, Path]:
    """Photos of real people found in installed packages."""
    found: dict[str, Path] = {}
    try:
        import ultralytics

        for name in ("bus.jpg", "zidane.jpg"):
            p = Path(ultralytics.__file__).parent / "assets" / name
            if p.exists():
                found[p.stem] = p
    except ImportError:
        pass
    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if p.exists():
            found["grace_hopper"] = p
    except ImportError:
        pass
    return found


def images(extra: list[Path], videos: list[Path], every: int) -> dict[str, np.ndarray]:
    """Name -> RGB image: the packaged photos, ``extra`` photos, and every ``every``-th frame of ``videos``."""
    out: dict[str, np.ndarray] = {}
    for name, path in {**photos(), **{p.stem: p for p in extra}}.items():
        out[name] = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    for v in videos:
        cap = cv2.VideoCapture(str(v))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                out[f"{v.stem}_f{i:04d}"] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
        cap.release()
    return out


def facing_sign(kp: np.ndarray, height: float, min_conf: float = 0.5) -> float:
    """``lrpose.facing.keypoint_facing`` of one person's (17, 3) keypoints (confidence >= ``min_conf``):
    + towards the camera, - away, units of ``height``."""
    k = torch.from_numpy(np.asarray(kp, np.float32))
    conf = torch.where(k[:, 2] >= min_conf, k[:, 2], torch.zeros(()))
    return float(keypoint_facing(k[None, :, :2], conf[None], torch.tensor([height])))


def similarity_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance of (N, 2) ``a`` to (N, 2) ``b`` after the best 2D similarity transform of ``a``."""
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(a0.T @ b0)
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = (s * [1.0, d]).sum() / max((a0**2).sum(), 1e-9)
    return float(np.linalg.norm(scale * a0 @ rot - b0, axis=1).mean())


def body_keypoints(body, reg: torch.Tensor, rotmats: np.ndarray, betas: np.ndarray, trans: np.ndarray, w: int, h: int) -> np.ndarray:  # noqa: ANN001
    """(17, 2) projected COCO keypoints of one posed body."""
    r = torch.from_numpy(rotmats).float()[None]
    posed = body(r[:, 1:], r[:, 0], torch.from_numpy(betas).float()[None])
    pts = (reg @ posed.vertices[0]).numpy() + trans
    return focal_for(w, h) * pts[:, :2] / pts[:, 2:] + np.array([w / 2.0 - 0.5, h / 2.0 - 0.5])


def place(photo: np.ndarray, scale: float, size: tuple[int, int] = (640, 480)) -> tuple[np.ndarray, np.ndarray]:
    """The photo downscaled by ``scale`` on a grey canvas at least ``size``; returns it and the (2,) offset."""
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else photo
    sh, sw = small.shape[:2]
    cw, ch = max(size[0], sw), max(size[1], sh)
    canvas = np.full((ch, cw, 3), 114, np.uint8)
    ox, oy = (cw - sw) // 2, (ch - sh) // 2
    canvas[oy : oy + sh, ox : ox + sw] = small
    return canvas, np.array([ox, oy], np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[0]), np.maximum(a[:, 1], b[1])
    x2, y2 = np.minimum(a[:, 2], b[2]), np.minimum(a[:, 3], b[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heights", type=float, nargs="+", default=[0, 128, 64, 48, 32, 24], help="box heights (0: full resolution)")
    ap.add_argument("--out", type=Path, default=None, help="write overlay PNGs here")
    ap.add_argument("--det-size", type=int, default=1280)
    ap.add_argument("--weights", type=Path, nargs="*", default=[None], help="RSC-Net checkpoints (default: shipped)")
    ap.add_argument("--network-only", action="store_true", help="only the network, no refined rows (faster)")
    ap.add_argument("--photo", type=Path, nargs="*", default=[], help="more photos of real people")
    ap.add_argument("--video", type=Path, nargs="*", default=[], help="real videos: every --every-th frame is a photo")
    ap.add_argument("--every", type=int, default=40)
    ap.add_argument("--min-height", type=float, default=60.0, help="reference people shorter than this (px) are skipped")
    args = ap.parse_args()
    torch.set_num_threads(1)
    body = load_body()
    models = {}
    for w in args.weights:
        name = "shipped" if w is None else w.stem
        models[name if name not in models else f"{name}#{len(models)}"] = find_rscnet(w, body)[0]
    from lrpose import assets

    det = YoloDetector(assets.resolve("detector", None), args.det_size)
    reg = body.coco_regressor()
    mean = default_mean_params(body)
    mean_rot = rot6d_to_rotmat(torch.from_numpy(mean.pose6d).float().reshape(24, 6)).reshape(24, 3, 3).numpy()
    methods = {
        "network": None,
        "refine (default)": Refiner(body, RefineConfig()),
        "refine (all sizes)": Refiner(body, replace(RefineConfig(), min_height=0.0)),
    }
    if args.network_only:
        methods = {"network": None}
    pipes = {}  # one detection per person and height serves every network
    for w, model in models.items():
        pipes.update({(k if len(models) == 1 else f"{k} [{w}]"): Pipeline(model, body, refiner=v) for k, v in methods.items()})
    rows: dict[tuple[float, str], list[tuple[float, ...]]] = {}
    for name, photo in images(args.photo, args.video, args.every).items():
        ref = det(photo, 0)
        for p, (box, kp) in enumerate(zip(ref.boxes_xyxy, ref.keypoints, strict=True)):
            bh = float(box[3] - box[1])
            sign = facing_sign(kp, bh)
            if abs(sign) < RefineConfig().facing_clear or (kp[:, 2] >= 0.5).sum() < 8 or bh < args.min_height:
                continue
            for height in args.heights:
                s = 1.0 if height == 0 else min(1.0, height / bh)
                canvas, off = place(photo, s)
                ch, cw = canvas.shape[:2]
                want = box * s + np.tile(off, 2)
                low = det(canvas, 0)
                if len(low.boxes_xyxy) == 0 or iou(low.boxes_xyxy, want).max() < 0.4:
                    for m in pipes:
                        rows.setdefault((height, m), []).append((np.nan,) * 7)
                    continue
                k = int(np.argmax(iou(low.boxes_xyxy, want)))
                lbox, lkp = low.boxes_xyxy[k], low.keypoints[k]
                truth = kp[:, :2] * s + off
                seen = kp[:, 2] >= 0.5
                lh = float(lbox[3] - lbox[1])
                det_err = float(np.linalg.norm(lkp[:, :2] - truth, axis=1)[seen & (lkp[:, 2] >= 0.3)].mean() / lh)
                for m, pipe in pipes.items():
                    est = pipe.estimate_image(canvas, lbox, lkp)
                    uv = body_keypoints(body, reg, est.rotmats, est.betas, est.trans, cw, ch)
                    toward = bool(body_faces_camera(torch.from_numpy(est.rotmats[0])))
                    ok = float(toward == (sign > 0))
                    err = float(np.linalg.norm(uv - truth, axis=1)[seen].mean() / lh)
                    shape = similarity_error(uv[seen], truth[seen]) / lh
                    rot = est.rotmats.copy()
                    rot[1:] = mean_rot[1:]
                    muv = body_keypoints(body, reg, rot, est.betas, est.trans, cw, ch)
                    if bool(body_faces_camera(torch.from_numpy(rot[0]))) != (sign > 0):  # the mean pose facing the right way
                        rot = turn_around(torch.from_numpy(rot)[None])[0].numpy()
                        muv = body_keypoints(body, reg, rot, est.betas, est.trans, cw, ch)
                    mshape = similarity_error(muv[seen], truth[seen]) / lh
                    rows.setdefault((height, m), []).append((ok, err, shape, mshape, det_err, float(est.refined), float(sign > 0)))
                    if args.out is not None:
                        args.out.mkdir(parents=True, exist_ok=True)
                        drawn = render_overlay(
                            canvas, torch.from_numpy(est.vertices)[None], body.faces, torch.from_numpy(est.trans)[None], focal_for(cw, ch)
                        )
                        x1, y1, x2, y2 = (lbox + [-lh / 2, -lh / 4, lh / 2, lh / 4]).astype(int).clip(0)
                        crop = drawn[y1:y2, x1:x2]
                        crop = cv2.resize(crop, None, fx=256 / crop.shape[0], fy=256 / crop.shape[0], interpolation=cv2.INTER_NEAREST)
                        save_png(args.out / f"{name}_p{p}_h{int(height)}_{''.join(c if c.isalnum() else '_' for c in m)}.png", crop)
    head = "| height px | method | people (towards) | facing | facing: towards / away | 2D error | 2D shape | mean-pose shape | det 2D |"
    print(head + " refined |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (height, m), v in rows.items():
        a = np.array(v, np.float64)
        good = np.isfinite(a[:, 0])
        a = a[good]
        tw = a[:, 6] > 0
        split = f"{a[tw, 0].mean() if tw.any() else np.nan:.2f} / {a[~tw, 0].mean() if (~tw).any() else np.nan:.2f}"
        print(
            f"| {'full' if height == 0 else int(height)} | {m} | {good.sum()}/{len(good)} ({int(tw.sum())}) "
            f"| {a[:, 0].mean():.2f} | {split} "
            f"| {a[:, 1].mean():.3f} "
            f"| {a[:, 2].mean():.3f} | {a[:, 3].mean():.3f} | {a[:, 4].mean():.3f} | {a[:, 5].mean():.2f} |"
        )


if __name__ == "__main__":
    main()
