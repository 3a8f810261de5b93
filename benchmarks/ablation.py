"""Small-scale reproduction of the paper's ablation (Tables 6-7) on synthetic data.

Trains each variant with the same data, budget and seeds, then evaluates all of them on a
held-out synthetic set (a seed never used for training) at the given resolutions.

  python benchmarks/ablation.py --train data/train --heldout data/heldout --out runs/ablation \\
      --variants Ba,RA,RA+SS,RA+SS+CL --steps 400 --depth 18 --input-size 64

Variants: Ba (plain network, basic loss), RA (resolution-aware, basic loss), RA+SS (+ directional
self-supervision), RA+SS+CL (+ contrastive feature loss: the full RSC-Net), Ba+SS+CL, and the
training-strategy rows MS (feature loss = MSE), CD (cosine distance), SS-o (undirected Eq. 9),
SS-h (only the highest resolution as target), noPT (no progressive training).
Writes ``ablation.json`` and ``ablation.md`` (a Table 6-style table) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from lrpose.evaluation import evaluate

from lrpose.body import load_body
from lrpose.models.checkpoint import load_rscnet
from lrpose.training.data import SyntheticCrops
from lrpose.training.loop import TrainConfig, train_rscnet

VARIANTS = {
    "Ba": {"baseline": True, "ss": "none", "cl": "none"},
    "RA": {"ss": "none", "cl": "none"},
    "RA+SS": {"cl": "none"},
    "RA+SS+CL": {},
    "Ba+SS+CL": {"baseline": True},
    "MS": {"cl": "mse"},
    "CD": {"cl": "cosine"},
    "SS-o": {"ss": "undirected"},
    "SS-h": {"ss": "highest"},
    "noPT": {"progressive": False},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default="Ba,RA,RA+SS,RA+SS+CL")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--depth", type=int, default=18)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--queue-size", type=int, default=1024)
    ap.add_argument("--resolutions", default="224,176,96,52,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    body = load_body()
    sides = [int(v) for v in args.resolutions.split(",")]
    heldout = SyntheticCrops(Path(args.heldout))
    out = Path(args.out)
    results = {}
    for name in args.variants.split(","):
        run = out / name.replace("+", "_")
        cfg = TrainConfig(data=(args.train,), out=str(run), depth=args.depth, input_size=args.input_size, batch_size=args.batch_size,
                          steps=args.steps, lr=args.lr, queue_size=args.queue_size, seed=args.seed, ckpt_every=10**9,
                          **VARIANTS[name])  # fmt: skip
        t0 = time.time()
        ckpt = run / "last.pt" if (run / "last.pt").exists() and (run / "train_summary.json").exists() else train_rscnet(cfg, body)
        train_s = time.time() - t0
        model, _ = load_rscnet(ckpt)
        res = evaluate(model, body, heldout, sides)
        results[name] = {"train_seconds": round(train_s, 1), "results": [vars(r) for r in res]}
        print(name, [(r.resolution, round(r.mpjpe, 1), round(r.pa_mpjpe, 1)) for r in res], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps({"args": vars(args), "variants": results}, indent=1))
    lines = ["| variant | " + " | ".join(f"{s} px MPJPE / PA" for s in sides) + " | train s |", "|---" * (len(sides) + 2) + "|"]
    for name, r in results.items():
        cells = " | ".join(f"{x['mpjpe']:.1f} / {x['pa_mpjpe']:.1f}" for x in r["results"])
        lines.append(f"| {name} | {cells} | {r['train_seconds']:.0f} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
