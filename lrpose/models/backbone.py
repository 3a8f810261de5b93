"""Resolution-aware ResNet (RSC-Net, Eq. 7): every residual block's branch is scaled by a
learned weight of the input's resolution range, ``z_k = z_{k-1} + alpha[p, k] * h_k(z_{k-1})``.

Plain torch (no torchvision). Module names follow the official RSC-Net release so its
checkpoints load without renaming: ``layer1.hmr_layer.0.conv1.weight``, ``layer1.alphas.3``
(shape ``(n_blocks, 1, 1, 1, 1)``, one entry per block, one tensor per range). In a bottleneck
the scaling happens after ``bn3`` and before the final ReLU: ``out = alpha * out + residual``.
With every alpha equal to 1 the network is exactly a plain ResNet with the same weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lrpose.models.alpha_rows import AlphaRows, alpha_rows

STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); residual branch scaled by alpha."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(alpha * out + residual)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck (ResNet-50, stride on the 3x3 as in torchvision/SPIN)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(alpha * out + residual)


class ResolutionAwareStage(nn.Module):
    """One ResNet stage (``layerN``): blocks in ``hmr_layer`` and one alpha row per range in ``alphas``."""

    def __init__(self, block: type[BasicBlock | Bottleneck], in_planes: int, planes: int, blocks: int, stride: int) -> None:
        super().__init__()
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or in_planes != out_planes:
            downsample = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))
        layers = [block(in_planes, planes, stride, downsample)] + [block(out_planes, planes) for _ in range(blocks - 1)]
        self.hmr_layer = nn.ModuleList(layers)
        self.alphas = alpha_rows(blocks)
        self.out_planes = out_planes

    def forward(self, x: torch.Tensor, range_index: int) -> torch.Tensor:
        alphas = self.alphas[str(range_index)]
        for k, block in enumerate(self.hmr_layer):
            x = block(x, alphas[k])
        return x


class ResolutionAwareResNet(AlphaRows, nn.Module):
    """Backbone: (B, 3, S, S) ImageNet-normalised crops + one range index -> (B, C, S/32, S/32) features.

    ``depth`` 50 (bottleneck, C = 2048, the paper's) or 18/34 (basic blocks, C = 512).
    """

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in STAGES:
            raise ValueError(f"depth must be one of {sorted(STAGES)}, got {depth}")
        kind, counts = STAGES[depth]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = 64
        self.layer1 = ResolutionAwareStage(block, planes, 64, counts[0], 1)
        self.layer2 = ResolutionAwareStage(block, self.layer1.out_planes, 128, counts[1], 2)
        self.layer3 = ResolutionAwareStage(block, self.layer2.out_planes, 256, counts[2], 2)
        self.layer4 = ResolutionAwareStage(block, self.layer3.out_planes, 512, counts[3], 2)
        self.out_channels = self.layer4.out_planes
        for m in self.modules():  # He init as in torchvision / SPIN
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stages(self) -> list[ResolutionAwareStage]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def alpha_dicts(self) -> list[nn.ParameterDict]:
        return [stage.alphas for stage in self.stages()]

    def forward(self, x: torch.Tensor, range_index: int) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x, range_index)
        return x
