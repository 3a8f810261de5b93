"""Turn a training run's ``last.pt`` into a small shipped checkpoint (weights/): floating-point
tensors stored as float16, training state (optimizer, queue, RNG) dropped, a note on how it was made.

  python tools/export_weights.py rscnet runs/full/last.pt weights/lrpose_rscnet.pt --note "..."
  python tools/export_weights.py temporal runs/temporal/last.pt weights/lrpose_temporal.pt --note "..."
  python tools/export_weights.py texture runs/texture/last.pt weights/lrpose_texture.pt --note "..."

The loaders cast back to float32 (``load_state_dict`` copies into the model's float32 tensors).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lrpose.files import atomic_torch_save
from lrpose.models.checkpoint import read_weights_only, weights_digest


def slim(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["rscnet", "temporal", "texture"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--note", default="", help="How the weights were trained (stored in meta.note).")
    args = ap.parse_args()
    obj = read_weights_only(args.src)
    if not isinstance(obj, dict) or obj.get("format") != f"lrpose.{args.kind}":
        raise SystemExit(f"{args.src} is not an lrpose {args.kind} checkpoint")
    out = {k: v for k, v in obj.items() if k not in ("train_state", "state_dict", "meta")}
    out["state_dict"] = slim(obj["state_dict"])
    out["weights_sha256"] = weights_digest(out["state_dict"])  # the digest of the float16 weights shipped
    meta = obj.get("meta", {})
    state = obj.get("train_state") or (meta if "optimizer" in meta else {})  # temporal runs before 0.3: state under meta
    keep = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) and k not in state}
    out["meta"] = {**keep, "note": args.note, "exported_from": args.src.name, "storage": "float16"}
    if "config" in state:
        out["meta"]["train_config"] = state["config"]
    atomic_torch_save(args.dst, out)
    size = args.dst.stat().st_size / 2**20
    print(f"{args.dst}: {size:.1f} MiB, {sum(v.numel() for v in out['state_dict'].values()) / 1e6:.1f} M values")


if __name__ == "__main__":
    main()
