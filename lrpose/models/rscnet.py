"""RSC-Net: resolution-aware backbone + iterative SMPL regressor + contrastive projection head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lrpose.geometry import rot6d_to_rotmat
from lrpose.models.backbone import ResolutionAwareResNet
from lrpose.models.mobilenet import ResolutionAwareMobileNetV2
from lrpose.models.regressor import HEADS, IterativeRegressor, MeanParams
from lrpose.models.yolo_backbone import ResolutionAwareYoloPose
from lrpose.resolution import NUM_RANGES

BACKBONES = ("resnet", "mobilenetv2", "yolopose")


@dataclass(frozen=True)
class RSCNetConfig:
    """Architecture of an RSC-Net (stored in every checkpoint)."""

    depth: int = 50
    """ResNet depth: 50 (paper, bottleneck, phi in R^2048) or 18/34 (basic blocks, phi in R^512).
    Ignored by the MobileNetV2 backbone."""
    input_size: int = 224
    """Side of the square network input in pixels (crops are bicubically resized to it)."""
    n_iter: int = 3
    """Iterations of the regressor."""
    embed_dim: int = 256
    """Output size of the projection head used by the contrastive loss."""
    resolution_aware: bool = True
    """False: the 'Ba' baseline, every range uses range 0's alphas, frozen at 1."""
    head: str = "rscnet"
    """Regressor head variant (``regressor.HEADS``): "rscnet" (ReLU after fc1/fc2, the paper's and
    lrpose's training default) or "spin" (SPIN's HMR head, no ReLU). Files without it are "rscnet"."""
    backbone: str = "resnet"
    """"resnet" (``depth``; the official checkpoints') or "mobilenetv2" (resolution-aware MobileNetV2,
    phi in R^1280, can start from ImageNet weights) or "yolopose" (the YOLO11n-pose detector's backbone and
    neck with a spatial readout, phi in R^1984, starts from its COCO-keypoint weights; ``input_size`` a multiple
    of 32). Files without it are "resnet"."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got '{self.backbone}'")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got '{self.head}'")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RSCNetOutput:
    """Per-sample outputs of RSC-Net."""

    features: torch.Tensor
    """(B, D) global-average-pooled backbone features phi (input of the temporal module)."""
    embedding: torch.Tensor
    """(B, embed_dim) projection-head output used by the contrastive feature loss."""
    pose6d: torch.Tensor
    """(B, 144) rot6d of the 24 SMPL joints (SPIN layout), root first."""
    rotmats: torch.Tensor
    """(B, 24, 3, 3) rotation matrices; index 0 is the global orient (camera frame)."""
    betas: torch.Tensor
    """(B, 10) SMPL shape."""
    cam: torch.Tensor
    """(B, 3) weak-perspective crop camera ``[s, tx, ty]``."""


def _backbone(config: RSCNetConfig) -> nn.Module:
    if config.backbone == "mobilenetv2":
        return ResolutionAwareMobileNetV2()
    if config.backbone == "yolopose":
        return ResolutionAwareYoloPose()
    return ResolutionAwareResNet(config.depth)


class RSCNet(nn.Module):
    """``forward(images, range_index) -> RSCNetOutput``.

    images (B, 3, S, S) ImageNet-normalised; range_index an int for the whole batch or a (B,)
    long tensor (samples are grouped by range internally; results come back in input order).
    """

    def __init__(self, config: RSCNetConfig, mean: MeanParams) -> None:
        super().__init__()
        self.config = config
        self.mean_params_source = mean.source
        self.backbone = _backbone(config)
        d = self.backbone.out_channels
        self.projection = nn.Sequential(nn.Linear(d, 1024), nn.ReLU(), nn.Linear(1024, config.embed_dim))
        self.regressor = IterativeRegressor(d, mean, config.n_iter, config.head)
        if not config.resolution_aware:
            self.backbone.set_alphas_trainable(False)

    @property
    def feature_dim(self) -> int:
        return self.backbone.out_channels

    def _forward_one_range(self, images: torch.Tensor, range_index: int) -> RSCNetOutput:
        if not 0 <= range_index < NUM_RANGES:
            raise ValueError(f"range_index must be in 0..{NUM_RANGES - 1}, got {range_index}")
        row = range_index if self.config.resolution_aware else 0
        return self.from_features(self.backbone(images, row).mean(dim=(2, 3)))

    def from_features(self, feat: torch.Tensor) -> RSCNetOutput:
        """Everything after the backbone: (B, D) pooled features phi -> regressor and projection head outputs."""
        pose6d, betas, cam = self.regressor(feat)
        rotmats = rot6d_to_rotmat(pose6d.reshape(-1, 24, 6))
        return RSCNetOutput(feat, self.projection(feat), pose6d, rotmats, betas, cam)

    def forward(self, images: torch.Tensor, range_index: int | torch.Tensor) -> RSCNetOutput:
        if isinstance(range_index, int):
            return self._forward_one_range(images, range_index)
        ranges = range_index.reshape(-1).to(torch.long)
        if ranges.numel() != images.shape[0]:
            raise ValueError(f"range_index has {ranges.numel()} entries for {images.shape[0]} images")
        groups = [(int(p), torch.nonzero(ranges == p).squeeze(1)) for p in torch.unique(ranges)]
        if len(groups) == 1:
            return self._forward_one_range(images, groups[0][0])
        parts = [(idx, self._forward_one_range(images[idx], p)) for p, idx in groups]
        fields = {}
        for name in RSCNetOutput.__dataclass_fields__:
            first = getattr(parts[0][1], name)
            out = first.new_empty((images.shape[0], *first.shape[1:]))
            for idx, part in parts:
                out[idx] = getattr(part, name)
            fields[name] = out
        return RSCNetOutput(**fields)
