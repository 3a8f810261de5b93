"""TexGlo: UV texture of a person from a low-resolution image (paper section 3.6).

Encoder-decoder with concatenative skip connections; every block is two 3x3 conv + BatchNorm +
ReLU layers; a **global context module** on the bottleneck (a global-average-pooling branch and a
1x1-reduced, flattened branch, concatenated, two fully connected layers, unflattened, 1x1 conv
back to the feature width) is fused with the bottleneck by point-wise summation (the paper's best
choice; ``fusion='concat'`` and ``global_context=False`` are the ablation rows of Table 8); an
extra upsampling layer before the output produces the UV map at ``tex_size``.

Input: (B, 3, S, S) ImageNet-normalised person crop, typically the 32 px image enlarged to 128
(bicubic). Output: (B, 3, T, T) UV texture in [0, 1] (v up, matching the body's ``uv``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TexGloConfig:
    """Architecture of a texture network (stored in its checkpoints)."""

    input_size: int = 128
    tex_size: int = 128
    width: int = 32
    depth: int = 4
    """Number of 2x downsamplings (the bottleneck is input_size / 2**depth)."""
    global_context: bool = True
    fusion: str = "sum"
    """'sum' (paper) or 'concat'."""
    reduce: int = 16
    """Channels of the flattened branch of the global context module."""
    hidden: int = 512
    """Width of the module's fully connected layers."""

    def to_dict(self) -> dict:
        return asdict(self)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class GlobalContext(nn.Module):
    """Global context of a (B, C, h, w) bottleneck -> (B, C, h, w) to fuse with it."""

    def __init__(self, channels: int, size: int, reduce: int, hidden: int) -> None:
        super().__init__()
        self.size, self.reduce = size, reduce
        self.squeeze = nn.Conv2d(channels, reduce, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels + reduce * size * size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, reduce * size * size),
            nn.ReLU(inplace=True),
        )
        self.expand = nn.Conv2d(reduce, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pooled = x.mean(dim=(2, 3))
        flat = self.squeeze(x).flatten(1)
        g = self.fc(torch.cat([pooled, flat], 1)).view(b, self.reduce, self.size, self.size)
        return self.expand(g)


class TexGlo(nn.Module):
    """(B, 3, S, S) low-resolution person image -> (B, 3, T, T) UV texture in [0, 1]."""

    def __init__(self, config: TexGloConfig) -> None:
        super().__init__()
        c = config
        if c.input_size % (2**c.depth):
            raise ValueError(f"input_size {c.input_size} must be divisible by 2**depth = {2**c.depth}")
        if c.fusion not in ("sum", "concat"):
            raise ValueError(f"fusion must be 'sum' or 'concat', got {c.fusion}")
        self.config = c
        widths = [min(c.width * 2**i, c.width * 8) for i in range(c.depth + 1)]
        self.enc = nn.ModuleList([conv_block(3, widths[0])] + [conv_block(widths[i - 1], widths[i]) for i in range(1, c.depth + 1)])
        bottleneck = c.input_size // 2**c.depth
        self.context = GlobalContext(widths[-1], bottleneck, c.reduce, c.hidden) if c.global_context else None
        self.fuse = nn.Conv2d(2 * widths[-1], widths[-1], 1) if (c.global_context and c.fusion == "concat") else None
        self.dec = nn.ModuleList([conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(c.depth))])
        self.extra_up = conv_block(widths[0], widths[0])
        self.out = nn.Conv2d(widths[0], 3, 1)

    def bottleneck_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder: (bottleneck after global-context fusion, skip features high to low resolution)."""
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        if self.context is not None:
            g = self.context(x)
            x = x + g if self.fuse is None else self.fuse(torch.cat([x, g], 1))
        return x, skips

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, skips = self.bottleneck_features(images)
        for block in self.dec:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        x = self.extra_up(F.interpolate(x, size=(self.config.tex_size, self.config.tex_size), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.out(x))
