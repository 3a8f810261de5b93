"""Pretrained-backbone files: a converted network's weights in lrpose's own self-describing format,
the starting point of ``lrpose train rscnet --backbone mobilenetv2|yolopose`` (``tools/convert_backbone.py``)."""

from __future__ import annotations

from pathlib import Path

import torch

from lrpose.errors import AssetFormatError, InputError
from lrpose.files import atomic_torch_save
from lrpose.models.checkpoint import FORMAT_VERSION, load_strict, read_weights_only, weights_digest
from lrpose.models.mobilenet import ResolutionAwareMobileNetV2
from lrpose.models.rscnet import RSCNet
from lrpose.models.yolo_backbone import ResolutionAwareYoloPose

BACKBONE_FORMAT = "lrpose.backbone"
BACKBONE_CLASSES = {"mobilenetv2": ResolutionAwareMobileNetV2, "yolopose": ResolutionAwareYoloPose}
"""Backbones with converted pretrained files."""


def save_backbone(path: Path, kind: str, state_dict: dict[str, torch.Tensor], origin: dict[str, str]) -> None:
    """Write pretrained backbone weights (our key names, without the parameters that start fresh) as a self-describing file:
    ``{"format": "lrpose.backbone", "backbone": kind, "state_dict", "weights_sha256", "origin"}``
    (``origin``: package, file, licence, sha256 of the source file, what the weights were trained on)."""
    if kind not in BACKBONE_CLASSES:
        raise InputError(f"no pretrained-backbone format for '{kind}' (known: {', '.join(BACKBONE_CLASSES)})")
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    payload = {"format": BACKBONE_FORMAT, "format_version": FORMAT_VERSION, "backbone": kind, "state_dict": sd,
               "weights_sha256": weights_digest(sd), "origin": dict(origin)}  # fmt: skip
    atomic_torch_save(Path(path), payload)


def load_backbone(path: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict as float32, origin) of a pretrained backbone file of ``kind``, keys checked strictly
    against the backbone (every key but ``fresh_names``: the alphas, which start at 1, and a new readout)."""
    path = Path(path)
    obj = read_weights_only(path)
    if not isinstance(obj, dict) or obj.get("format") != BACKBONE_FORMAT:
        raise AssetFormatError(f"{path} is not an lrpose pretrained-backbone file (make one with tools/convert_backbone.py)")
    if obj.get("backbone") != kind:
        raise AssetFormatError(f"{path} holds a '{obj.get('backbone')}' backbone, not '{kind}'")
    sd = obj.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise AssetFormatError(f"{path}: pretrained-backbone file without its weights")
    if obj.get("weights_sha256") != weights_digest(sd):
        raise AssetFormatError(f"{path} is damaged: its weights do not match the digest stored in it; re-make or restore it")
    module = BACKBONE_CLASSES[kind]()
    load_strict(module, sd, path, fresh_names(module))
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, dict(obj.get("origin") or {})


def init_backbone(model: RSCNet, path: Path) -> dict[str, str]:
    """Load pretrained weights into ``model.backbone`` (alphas keep their values); returns the file's origin."""
    sd, origin = load_backbone(path, model.config.backbone)
    model.backbone.load_state_dict(sd, strict=False)  # load_backbone checked every key but the fresh ones
    return origin


def fresh_names(backbone: torch.nn.Module) -> set[str]:
    """State-dict keys of ``backbone`` that a pretrained file does not hold: the alphas, plus any prefix the class
    lists in ``fresh_prefixes`` (the YOLO backbone's readout)."""
    prefixes = getattr(backbone, "fresh_prefixes", ("alphas.",))
    return {k for k in backbone.state_dict() if k.startswith(prefixes)}


def freeze_pretrained(backbone: torch.nn.Module) -> int:
    """Stop training the pretrained weights of ``backbone`` (everything but ``fresh_names``); returns how many
    values were frozen. Batch-norm statistics are not touched (the YOLO detector's layers have none: they are fused;
    the readout's standardisation is fresh and keeps learning its statistics)."""
    fresh = fresh_names(backbone)
    frozen = 0
    for name, p in backbone.named_parameters():
        if name not in fresh:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen
