"""Resolution-aware YOLO11n-pose backbone: the COCO-keypoint detector's backbone and neck as RSC-Net's
feature extractor (issue 14: a backbone that has seen real people).

Plain torch, in the layout of Ultralytics' YOLO11n (scale n: depth 0.5, width 0.25) after conv + batch
norm fusion, so a fused ``yolo11n-pose.pt`` converts by renaming only (``tools/convert_backbone.py``):
every convolution has a bias and is followed by SiLU. Layers 0-10 are the backbone, 11-22 the FPN/PAN
neck; the Pose head (layer 23) is not used. Every residual branch (13: the bottlenecks of the C3k2 /
C3k blocks and the attention and feed-forward branches of the PSA block) is scaled by a learned weight of
the input's resolution range, as in the paper's Eq. 7: ``z = z + alpha[p, k] * h_k(z)``; with every
alpha at 1 the network is exactly the detector's.

A readout that the detector does not have turns the three neck outputs P3, P4, P5 (strides 8, 16, 32;
64, 128, 256 channels) into one feature vector phi: each level is average-pooled to a ``READ_GRID`` x
``READ_GRID`` grid (keeping where things are in the crop, which a global pool throws away) and projected
by a 1x1 conv + SiLU to ``READ_CHANNELS``, then flattened and concatenated with each level's average,
and layer-normalised. Before that each level's channels are standardised (batch norm without scale and
shift, its running statistics learnt in training): a neck channel's offset (means -0.3 to 2.3) is up
to ten times its variation across people (std ~0.2), so without it phi was nearly the same vector for
every person and the regressor stayed at the mean pose (head-only training on 2,048 crops: PA-MPJPE
150 mm and facing 0.45-0.70 after 1000 steps, where a ridge regression on the standardised grids
reached 104 mm and 0.72). Output (B, D, 1, 1), D = 3 * READ_CHANNELS *
READ_GRID**2 + 448 = 1984 (so that ``RSCNet``'s global pool is the identity).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lrpose.models.alpha_rows import AlphaRows, alpha_rows

READ_CHANNELS = 32
READ_GRID = 4
LEVELS = (64, 128, 256)
"""Channels of P3, P4, P5."""


class Conv(nn.Module):
    """Conv2d (with bias: batch norm fused in) + SiLU (or no activation)."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=True)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    """Two 3x3 convs with a residual: ``x + alpha * cv2(cv1(x))``."""

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.cv1 = Conv(c, hidden, 3)
        self.cv2 = Conv(hidden, c, 3)

    def forward(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        return x + alphas.pop(0) * self.cv2(self.cv1(x))


class C3k(nn.Module):
    """CSP block with two bottlenecks: ``cv3(cat(m(cv1(x)), cv2(x)))``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        half = c // 2
        self.cv1 = Conv(c, half)
        self.cv2 = Conv(c, half)
        self.cv3 = Conv(2 * half, c)
        self.m = nn.ModuleList([Bottleneck(half, half), Bottleneck(half, half)])

    def forward(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        y = self.cv1(x)
        for block in self.m:
            y = block(y, alphas)
        return self.cv3(torch.cat((y, self.cv2(x)), 1))


class C3k2(nn.Module):
    """C2f-style block: split ``cv1(x)`` in two halves, one inner block on the second, concatenate all three."""

    def __init__(self, c_in: int, c_out: int, c3k: bool, e: float) -> None:
        super().__init__()
        self.c = int(c_out * e)
        self.cv1 = Conv(c_in, 2 * self.c)
        self.cv2 = Conv(3 * self.c, c_out)
        self.m = nn.ModuleList([C3k(self.c) if c3k else Bottleneck(self.c, self.c // 2)])

    def forward(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        a, b = self.cv1(x).chunk(2, 1)
        return self.cv2(torch.cat((a, b, self.m[0](b, alphas)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (three chained 5x5 max pools)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1 = Conv(c, c // 2)
        self.cv2 = Conv(c * 2, c)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions (2 heads of 64 values, keys of 32) + a depthwise positional conv."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.key_dim = self.head_dim // 2
        self.qkv = Conv(dim, dim + 2 * self.key_dim * heads, act=False)
        self.proj = Conv(dim, dim, act=False)
        self.pe = Conv(dim, dim, 3, groups=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], 2)
        attn = ((q.transpose(-2, -1) @ k) * self.key_dim**-0.5).softmax(-1)
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """``x + alpha * attn(x)``, then ``x + alpha * ffn(x)``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.attn = Attention(c, c // 64)
        self.ffn = nn.Sequential(Conv(c, 2 * c), Conv(2 * c, c, act=False))

    def forward(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        x = x + alphas.pop(0) * self.attn(x)
        return x + alphas.pop(0) * self.ffn(x)


class C2PSA(nn.Module):
    """Half the channels through one PSA block, the other half passed on."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.c = c // 2
        self.cv1 = Conv(c, c)
        self.cv2 = Conv(c, c)
        self.m = nn.ModuleList([PSABlock(self.c)])

    def forward(self, x: torch.Tensor, alphas: list[torch.Tensor]) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), 1)
        return self.cv2(torch.cat((a, self.m[0](b, alphas)), 1))


def _layers() -> nn.ModuleList:
    """Layers 0-22 of YOLO11n(-pose); Upsample/Concat layers are placeholders (``None`` entries would not index)."""
    none = nn.Identity
    return nn.ModuleList([
        Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C3k2(32, 64, False, 0.25), Conv(64, 64, 3, 2), C3k2(64, 128, False, 0.25),
        Conv(128, 128, 3, 2), C3k2(128, 128, True, 0.5), Conv(128, 256, 3, 2), C3k2(256, 256, True, 0.5), SPPF(256), C2PSA(256),
        none(), none(), C3k2(384, 128, False, 0.5), none(), none(), C3k2(256, 64, False, 0.5), Conv(64, 64, 3, 2), none(),
        C3k2(192, 128, False, 0.5), Conv(128, 128, 3, 2), none(), C3k2(384, 256, True, 0.5),
    ])  # fmt: skip


N_RESIDUAL = 13
"""Alpha-scaled residual branches: 1+1+2+2 in the backbone's C3k2 blocks, 2 in the PSA block, 1+1+1+2 in the neck."""


class ResolutionAwareYoloPose(AlphaRows, nn.Module):
    """Backbone: (B, 3, S, S) crops in [0, 1] RGB (S a multiple of 32) + one range index -> (B, 1984, 1, 1).

    Unlike the ImageNet backbones this one expects plain [0, 1] pixels, as the detector was trained on;
    ``input_mean``/``input_std`` say how to undo RSC-Net's ImageNet normalisation (done inside ``forward``).
    """

    input_mean = (0.485, 0.456, 0.406)
    input_std = (0.229, 0.224, 0.225)
    fresh_prefixes = ("alphas.", "standardize.", "readout.", "norm.")
    """Parameters a converted detector file does not hold (they start fresh)."""
    grid = READ_GRID
    level_channels = LEVELS

    def __init__(self) -> None:
        super().__init__()
        self.layers = _layers()
        self.alphas = alpha_rows(N_RESIDUAL)
        self.standardize = nn.ModuleList([nn.BatchNorm2d(c, affine=False) for c in LEVELS])
        self.readout = nn.ModuleList([Conv(c, READ_CHANNELS) for c in LEVELS])
        self.out_channels = len(LEVELS) * READ_CHANNELS * READ_GRID**2 + sum(LEVELS)
        self.norm = nn.LayerNorm(self.out_channels)
        self.register_buffer("_mean", torch.tensor(self.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.input_std).view(1, 3, 1, 1), persistent=False)

    def levels(self, x: torch.Tensor, range_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """P3, P4, P5 of [0, 1] RGB images ``x`` (B, 3, S, S): (B, 64, S/8, S/8), (B, 128, S/16, S/16), (B, 256, S/32, S/32)."""
        alphas = list(self.alphas[str(range_index)].unbind(0))
        L = self.layers
        x = L[1](L[0](x))
        p2 = L[2](x, alphas)
        p3b = L[4](L[3](p2), alphas)
        p4b = L[6](L[5](p3b), alphas)
        p5b = L[10](L[9](L[8](L[7](p4b), alphas)), alphas)
        up = F.interpolate(p5b, scale_factor=2.0, mode="nearest")
        n4 = L[13](torch.cat((up, p4b), 1), alphas)
        p3 = L[16](torch.cat((F.interpolate(n4, scale_factor=2.0, mode="nearest"), p3b), 1), alphas)
        p4 = L[19](torch.cat((L[17](p3), n4), 1), alphas)
        p5 = L[22](torch.cat((L[20](p4), p5b), 1), alphas)
        if alphas:
            raise RuntimeError(f"{len(alphas)} alphas unused")
        return p3, p4, p5

    def forward(self, x: torch.Tensor, range_index: int) -> torch.Tensor:
        return self.readout_of(self.grids(x, range_index))[:, :, None, None]

    def grids(self, x: torch.Tensor, range_index: int) -> list[torch.Tensor]:
        """ImageNet-normalised crops (B, 3, S, S) -> P3, P4, P5 average-pooled to (B, C, READ_GRID, READ_GRID): all the
        readout needs (training can cache them while the detector's layers and alphas stay fixed)."""
        x = x * self._std + self._mean  # ImageNet-normalised -> [0, 1], what the detector saw
        return [F.adaptive_avg_pool2d(level, READ_GRID) for level in self.levels(x, range_index)]

    def readout_of(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Pooled levels (``grids``) -> (B, D) phi: per level, channels standardised, a 1x1 conv + SiLU on its grid,
        flattened, then each level's mean over the grid (its global average when S is a multiple of 128), layer-normalised
        together."""
        grids = [std(g) for g, std in zip(grids, self.standardize, strict=True)]
        feats = [read(g).flatten(1) for g, read in zip(grids, self.readout, strict=True)]
        return self.norm(torch.cat(feats + [g.mean(dim=(2, 3)) for g in grids], 1))

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The detector's own weights (what ``--freeze-backbone`` keeps fixed)."""
        return list(self.layers.parameters())


def convert_ultralytics(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fused YOLO11n(-pose) state dict (``model.{i}.…``) -> this backbone's ``layers.{i}.…`` (layers 0-22; the
    head, layer 23, is dropped). Any key of layers 0-22 the backbone lacks is an error naming it."""
    ours = ResolutionAwareYoloPose().state_dict()
    out, unknown = {}, []
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] != "model" or not parts[1].isdigit() or int(parts[1]) > 22:
            continue
        name = "layers." + ".".join(parts[1:])
        if name not in ours or ours[name].shape != value.shape:
            unknown.append(key)
            continue
        out[name] = value
    missing = [k for k in ours if k.startswith("layers.") and k not in out]
    if unknown or missing:
        raise ValueError(f"not a fused YOLO11n model: unexpected {', '.join(unknown[:3]) or '-'}; missing {', '.join(missing[:3]) or '-'}")
    return out
