"""The synthetic "new camera" test of ``lrpose adapt``: score RSC-Net checkpoints on held-out clips of
one camera WITHOUT keypoint fitting (per-frame, ``--no-refine --no-temporal``; ``--temporal`` adds rows with the
temporal module ``lrpose video`` pairs with each checkpoint, e.g. the one stored in an adapted file), people given by
their ground-truth boxes (so only the network differs), with ``benchmarks/eval_clip.py``'s metrics.

  lrpose synth --kind video --n 12 --seed 500 --scene-seed 7 --pitch 50,62 --light 0.6 --seconds 6 --out data/newcam
  lrpose adapt data/newcam/clip_0000{0..7}.mp4 --out newcam.pt --steps 200 --frame-stride 1 --label-stride 1
  python benchmarks/adapt_newcam.py data/newcam/clip_0000{8,9}.mp4 data/newcam/clip_0001{0,1}.mp4 \\
      --weights weights/lrpose_rscnet.pt --weights newcam.pt --out runs/newcam_eval

Prints one Markdown row per checkpoint: MPJPE, PA-MPJPE (mm, 14 LSP joints, hip-aligned), 2D body
keypoint error (of the true box height) and facing agreement, each the mean over the clips'
matched person-frames (clips weighted by their person-frames).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_clip import score  # noqa: E402

from lrpose.cli import main as lrpose_main  # noqa: E402


def boxes_json(gt_path: Path, out: Path) -> Path:
    """The clip's ground-truth boxes of visible people as ``lrpose video --boxes`` JSON."""
    gt = np.load(gt_path)
    frames = {str(t): [gt["boxes"][t, i].tolist() for i in range(gt["present"].shape[1]) if gt["present"][t, i]]
              for t in range(gt["present"].shape[0])}  # fmt: skip
    out.write_text(json.dumps({"frames": frames}))
    return out


def run(clips: list[Path], weights: Path, out: Path, threads: int, temporal: bool = False) -> dict[str, float]:
    """Results of ``weights`` on every clip (``lrpose video`` with ground-truth boxes), scored and pooled."""
    pooled: dict[str, list[tuple[float, int]]] = {}
    for clip in clips:
        gt = clip.with_suffix(".npz")
        boxes = boxes_json(gt, out / f"{clip.stem}_boxes.json")
        folder = out / (weights.stem + ("_temporal" if temporal else ""))
        args = ["video", str(clip), "--out", str(folder), "--boxes", str(boxes), "--weights", str(weights), "--no-refine",
                "--no-overlay", "--threads", str(threads), "--min-track", "3", *([] if temporal else ["--no-temporal"])]  # fmt: skip
        if lrpose_main(args) != 0:
            raise SystemExit(f"lrpose video failed on {clip}")
        z = np.load(gt)
        frames = int(z["present"].sum())
        for k, v in score(gt, folder / clip.stem).items():
            if isinstance(v, float) and np.isfinite(v):
                pooled.setdefault(k, []).append((v, frames))
    return {k: sum(v * n for v, n in rows) / sum(n for _, n in rows) for k, rows in pooled.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path, nargs="+", help="Held-out clips (.mp4 with their _gt .npz beside them, same stem).")
    ap.add_argument("--weights", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--temporal", action="store_true", help="Also score each with the temporal module lrpose video pairs with it.")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [((w, False), run(args.clips, w, args.out, args.threads)) for w in args.weights]
    rows += [((w, True), run(args.clips, w, args.out, args.threads, temporal=True)) for w in args.weights] if args.temporal else []
    print("| checkpoint | MPJPE | PA-MPJPE | 2D body (of height) | facing | accel error |")
    print("|---|---|---|---|---|---|")
    for (w, t), r in rows:
        name = w.name + (" + its temporal module" if t else ", per frame")
        accel = r.get("accel_error", float("nan"))
        print(f"| {name} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['kp2d']:.4f} | {r['facing']:.3f} | {accel:.1f} |")
    (args.out / "scores.json").write_text(json.dumps({f"{w}{' temporal' if t else ''}": r for (w, t), r in rows}, indent=1))


if __name__ == "__main__":
    main()
