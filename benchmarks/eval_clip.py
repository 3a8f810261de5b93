"""Score ``lrpose video`` results on a synthetic clip against its ground truth (``lrpose synth --kind video``).

  lrpose video examples/cctv_synthetic.mp4 --out runs/a
  lrpose video examples/cctv_synthetic.mp4 --out runs/b --no-temporal
  python benchmarks/eval_clip.py examples/cctv_synthetic_gt.npz runs/a/cctv_synthetic runs/b/cctv_synthetic

Each track is matched to the ground-truth person whose boxes overlap it most (mean IoU over the
shared frames, at least 0.3). Metrics over the matched frames, SPIN/VIBE protocol: MPJPE and
PA-MPJPE on 14 LSP joints (hip-midpoint aligned, mm), acceleration and acceleration error (mm/frame^2)
over runs of consecutive frames; people found = matched ground-truth people / people visible
for at least 8 frames. 2D: mean distance of the body's COCO-17 keypoints (projected with the
result's camera) and of the detector's keypoints (where confident) to the true ones, in units of
the true box height; facing: share of frames whose body faces the camera (or away) as the truth does
(``lrpose.facing``); detector facing: the same for the detector's keypoints where they say it clearly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lrpose.body import load_body
from lrpose.facing import body_faces_camera, keypoint_facing
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.metrics import accel, accel_error, hip_align, mpjpe, pa_mpjpe
from lrpose.results import read_result

J24_TO_COCO = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
"""COCO-17 keypoints among SPIN's 24 (the clips' ``part``)."""


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) xyxy boxes."""
    w = (np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])).clip(0)
    h = (np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])).clip(0)
    inter = w * h
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


@torch.no_grad()
def score(gt_path: Path, folder: Path) -> dict[str, float]:
    body = load_body()
    gt = np.load(gt_path)
    values: dict[str, list[float]] = {
        "mpjpe": [],
        "pa_mpjpe": [],
        "accel": [],
        "accel_error": [],
        "kp2d": [],
        "det2d": [],
        "facing": [],
        "det_facing": [],
    }
    reg = body.coco_regressor()
    matched = set()
    for track in sorted((folder / "tracks").glob("*.npz")):
        z = read_result(track)
        frames = z["frame_ids"]
        best, best_iou = None, 0.3
        for person in range(gt["present"].shape[1]):
            seen = gt["present"][frames, person]
            if seen.sum() < 3:
                continue
            m = float(iou(z["boxes_xyxy"][seen], gt["boxes"][frames[seen], person]).mean())
            if m > best_iou:
                best, best_iou = person, m
        if best is None:
            continue
        matched.add(best)
        keep = gt["present"][frames, best]
        f = frames[keep]
        pred = body.forward_axis_angle(torch.from_numpy(z["pose"][keep]).float(), torch.from_numpy(z["betas"][keep]).float())
        truth = body.forward_axis_angle(
            torch.from_numpy(gt["pose"][f, best]).float(), torch.from_numpy(np.repeat(gt["betas"][best][None], len(f), 0)).float()
        )
        p, g = hip_align(body.lsp_joints(pred.vertices)), hip_align(body.lsp_joints(truth.vertices))
        values["mpjpe"] += mpjpe(p, g).tolist()
        true2d = gt["part"][f, best][:, J24_TO_COCO]
        height = (gt["boxes"][f, best, 3] - gt["boxes"][f, best, 1])[:, None]
        pts = torch.einsum("jv,bvi->bji", reg, pred.vertices).numpy() + z["trans"][keep][:, None]
        uv = float(z["focal_px"]) * pts[..., :2] / pts[..., 2:] + (z["image_size"] / 2.0 - 0.5)
        seen = true2d[..., 2] > 0
        values["kp2d"] += (np.linalg.norm(uv - true2d[..., :2], axis=-1) / height)[seen].tolist()
        if "keypoints2d" in z:
            det = z["keypoints2d"][keep]
            ok = seen & (np.nan_to_num(det[..., 2]) >= 0.3)
            values["det2d"] += (np.linalg.norm(det[..., :2] - true2d[..., :2], axis=-1) / height)[ok].tolist()
        faces = lambda aa: body_faces_camera(axis_angle_to_rotmat(torch.from_numpy(aa[:, :3]).float())).numpy()  # noqa: E731
        truth_faces = faces(gt["pose"][f, best])
        values["facing"] += (faces(z["pose"][keep]) == truth_faces).tolist()
        if "keypoints2d" in z:  # what the detector's keypoints alone say, where they say it clearly
            det = torch.from_numpy(np.nan_to_num(z["keypoints2d"][keep])).float()
            said = keypoint_facing(det[..., :2], torch.where(det[..., 2] >= 0.3, det[..., 2], 0.0), torch.from_numpy(height[:, 0]).float())
            clear = (said.abs() >= 0.04).numpy()
            values["det_facing"] += ((said.numpy() > 0) == truth_faces)[clear].tolist()
        values["pa_mpjpe"] += pa_mpjpe(p, g).tolist()
        for run in np.split(np.arange(len(f)), np.nonzero(np.diff(f) != 1)[0] + 1):  # consecutive frames only
            if len(run) >= 3:
                values["accel"] += accel(p[run]).tolist()
                values["accel_error"] += accel_error(p[run], g[run]).tolist()
    visible = int((gt["present"].sum(0) >= 8).sum())
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in values.items()}
    out["people_found"] = f"{len(matched)}/{visible}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gt", type=Path)
    ap.add_argument("folders", type=Path, nargs="+", help="Result folders of lrpose video (holding tracks/).")
    args = ap.parse_args()
    print("| results | people found | MPJPE | PA-MPJPE | accel | accel error | 2D body | 2D detector | facing | detector facing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        r = score(args.gt, folder)
        print(
            f"| {folder} | {r['people_found']} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['accel']:.2f} | {r['accel_error']:.2f} "
            f"| {r['kp2d']:.3f} | {r['det2d']:.3f} | {r['facing']:.3f} | {r['det_facing']:.3f} |"
        )


if __name__ == "__main__":
    main()
