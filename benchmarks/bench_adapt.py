"""Time budget of ``lrpose adapt``: each stage's rate on a clip, extrapolated to a long clip.

  python benchmarks/bench_adapt.py                                   # examples/cctv_synthetic.mp4, 10-minute 25 fps clip
  python benchmarks/bench_adapt.py --load 2 --json runs/bench_adapt.json

Measured with the command's own functions and default settings (``lrpose.cli_adapt``,
``lrpose.training.adapt``, ``lrpose.training.adapt_temporal``): pseudo-labelling (the video pipeline
on every frame: YOLO pose at 1280 px, RSC-Net, temporal module, keypoint fit, the label filter) in
frames/s; decoding alone (a long clip is decoded whole, only some windows are labelled); the
held-out score per person-frame (run before and after); one RSC-Net step of ``fine_tune`` (8
pseudo-labels x 3 views + 4 synthetic people rendered on the fly, forward, backward, Adam); phi of
the adapted network per pseudo-label; one GRU step of ``fine_tune_temporal`` (8 chunks of <= 24
frames), with the base's GRU layers kept (the default) and trained too. Step times come from the
trainers' progress callbacks; the first step is a warm-up and is not counted.

The extrapolation for a ``--minutes`` clip at ``--fps``: decode every frame, label ``--max-frames`` of
them, ``--steps`` RSC-Net steps, phi of the pseudo-labels (as many per labelled frame of the training
part as on the measured clip, at most 6000), ``--temporal-steps`` GRU steps; and the largest
``--max-frames`` (in hundreds) that keeps the total within ``--budget-min``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BUSY = "import torch; torch.set_num_threads(1); a = torch.rand(256, 256)\nwhile True: a = (a @ a).clamp(-1, 1)"


class StepClock:
    """A ``progress(done, total, parts)`` callback that times each step; ``mean(skip=1)`` leaves the warm-up out."""

    def __init__(self) -> None:
        self.marks = [time.perf_counter()]

    def __call__(self, done: int, total: int, parts: dict) -> None:
        self.marks.append(time.perf_counter())

    def mean(self, skip: int = 1) -> float:
        return float(np.mean(np.diff(self.marks)[skip:]))


def measure(clip: Path, steps: int, tmp: Path) -> dict:
    """Each stage of ``lrpose adapt`` on ``clip`` with the command's own functions and defaults."""
    from dataclasses import replace

    from lrpose.body import load_body
    from lrpose.cli import REFINE_MIN_HEIGHT
    from lrpose.cli_adapt import _base, _detector, _refiner, _temporal
    from lrpose.config import BodyConfig
    from lrpose.io import FrameSource
    from lrpose.models.checkpoint import weights_digest
    from lrpose.models.temporal import TemporalModule
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.training.adapt import Adaptation, AdaptConfig, fine_tune, gather, heldout_score
    from lrpose.training.adapt_temporal import TemporalAdaptConfig, fine_tune_temporal, label_sequences

    body = load_body()
    model, info, _ = _base(None)
    choice = _temporal(model, info)
    pipeline = Pipeline(model, body, _detector("auto", None, None, 1280, None), choice.module, PipelineConfig(det_stride=1, box_scale=1.2),
                        refiner=_refiner(body, 10, REFINE_MIN_HEIGHT))  # fmt: skip
    cfg = AdaptConfig(sources=(str(clip),), out=str(tmp / "a.pt"), base_id=info.checkpoint_id, frame_stride=1, steps=steps + 1,
                      ckpt_every=10_000, tolerance=1e9)  # fmt: skip
    src = FrameSource(clip)
    t0 = time.perf_counter()
    decoded = sum(1 for _ in src)
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels, held, prov = gather([clip], pipeline, cfg, tmp / "run")
    label_s = time.perf_counter() - t0
    train_frames = int(np.floor((1 - cfg.val_fraction) * src.frame_count)) - round(src.fps)  # minus the 1 s gap
    t0 = time.perf_counter()
    heldout_score(model, body, held)
    held_s = (time.perf_counter() - t0) / max(len(held), 1)

    job = Adaptation(model, body, BodyConfig(), labels, held, tmp / "run", {"base_checkpoint": info.checkpoint_id, **prov})
    rsc = StepClock()
    fine_tune(cfg, job, rsc)
    tcfg = TemporalAdaptConfig(steps=steps + 1, ckpt_every=10_000, base_id=choice.info.checkpoint_id if choice.module else "",
                               rscnet_digest=weights_digest(job.model.state_dict()))  # fmt: skip
    t0 = time.perf_counter()
    seqs = label_sequences(job.model, body, labels, tcfg)
    phi_s = (time.perf_counter() - t0) / max(int(seqs.length.sum()), 1)
    start = choice.module if choice.module is not None else TemporalModule.from_rscnet(job.model)
    gru = StepClock()
    fine_tune_temporal(tcfg, start, body, seqs, tmp / "run" / "temporal", body.body_id, gru)
    full = StepClock()  # the recurrent layers trained too (the identity start, or freeze_recurrent off)
    fine_tune_temporal(replace(tcfg, freeze_recurrent=False), start, body, seqs, tmp / "run" / "temporal_full", body.body_id, full)
    return {
        "clip": str(clip), "frames": src.frame_count, "fps": src.fps, "size": [src.width, src.height], "decode_fps": decoded / decode_s,
        "label_fps": src.frame_count / label_s, "labels": len(labels), "heldout": len(held), "train_frames": train_frames,
        "labels_per_frame": len(labels) / max(train_frames, 1), "rscnet_step_s": rsc.mean(), "heldout_s_per_frame": held_s,
        "phi_s_per_label": phi_s, "chunks": len(seqs.length), "gru_step_s": gru.mean(), "gru_full_step_s": full.mean(),
        "threads": torch.get_num_threads(), "temporal_start": choice.line,
    }  # fmt: skip


def budget(m: dict, minutes: float, fps: float, max_frames: int, steps: int, temporal_steps: int, val_fraction: float = 0.2) -> dict:
    """Seconds per stage for a ``minutes``-long clip at ``fps`` under these settings (rates from ``m``)."""
    frames = minutes * 60 * fps
    read = min(max_frames, frames)
    labels = min(6000.0, m["labels_per_frame"] * read * (1 - val_fraction))
    parts = {
        "decode": frames / m["decode_fps"], "pseudo-labels": read / m["label_fps"],
        "rscnet": steps * m["rscnet_step_s"] + 2 * read * val_fraction * m["labels_per_frame"] * m["heldout_s_per_frame"],
        "phi": labels * m["phi_s_per_label"] if temporal_steps else 0.0, "gru": temporal_steps * m["gru_step_s"],
    }  # fmt: skip
    return {**parts, "total": sum(parts.values()), "labels": labels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="examples/cctv_synthetic.mp4")
    ap.add_argument("--timed-steps", type=int, default=5, help="Steps of each kind timed (after one warm-up).")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--steps", type=int, default=300, help="RSC-Net steps of the extrapolated run.")
    ap.add_argument("--temporal-steps", type=int, default=150)
    ap.add_argument("--budget-min", type=float, default=30.0)
    ap.add_argument("--load", type=int, default=0, help="Busy processes beside the measurement.")
    ap.add_argument("--threads", type=int, default=0, help="As lrpose adapt --threads (0: the cores not busy with other work).")
    ap.add_argument("--json", help="Also write the results here.")
    args = ap.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        from lrpose.threads import set_threads

        time.sleep(2.0 if busy else 0.0)  # let the busy processes show in the load the thread choice reads
        set_threads(args.threads)
        with tempfile.TemporaryDirectory() as tmp:
            m = measure(Path(args.clip), args.timed_steps, Path(tmp))
    finally:
        for p in busy:
            p.kill()
    load = os.getloadavg()
    print(f"clip {m['clip']} ({m['frames']} frames {m['size'][0]}x{m['size'][1]} at {m['fps']:.0f} fps) | torch threads {m['threads']} | "
          f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} | {args.load} busy processes added")  # fmt: skip
    print(f"| stage | rate |\n|---|---|\n| decode | {m['decode_fps']:.1f} frames/s |\n| pseudo-labelling | {m['label_fps']:.2f} frames/s "
          f"({m['labels']} labels from {m['train_frames']} training frames: {m['labels_per_frame']:.2f} per frame; "
          f"{m['heldout']} held out) |\n"
          f"| RSC-Net step | {m['rscnet_step_s']:.2f} s |\n| phi per pseudo-label | {1000 * m['phi_s_per_label']:.1f} ms |\n"
          f"| GRU step ({m['chunks']} chunks; GRU layers kept) | {m['gru_step_s']:.2f} s |\n"
          f"| GRU step, GRU layers trained too | {m['gru_full_step_s']:.2f} s |\n"
          f"| held-out score per person-frame (twice) | {1000 * m['heldout_s_per_frame']:.1f} ms |")  # fmt: skip
    rows = []
    for mf in (300, 600, 1000, 1500):
        b = budget(m, args.minutes, args.fps, mf, args.steps, args.temporal_steps)
        rows.append((mf, b))
    print(f"\n{args.minutes:g}-minute clip at {args.fps:g} fps, {args.steps} RSC-Net + {args.temporal_steps} GRU steps (minutes):")
    print("| --max-frames | decode | pseudo-labels | RSC-Net | phi | GRU | total |\n|---|---|---|---|---|---|---|")
    for mf, b in rows:
        print(f"| {mf} | " + " | ".join(f"{b[k] / 60:.1f}" for k in ("decode", "pseudo-labels", "rscnet", "phi", "gru", "total")) + " |")
    fits = [mf for mf in range(100, 20001, 100) if budget(m, args.minutes, args.fps, mf, args.steps, args.temporal_steps)["total"]
            <= args.budget_min * 60]  # fmt: skip
    best = max(fits) if fits else None
    print(f"largest --max-frames within {args.budget_min:g} min: {best if best else 'none (the steps alone exceed it)'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": m, "load": load, "busy": args.load, "max_frames_within_budget": best,
                                               "rows": {str(k): v for k, v in rows}}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
