"""RSC-Net's resolution-dependent alpha rows (paper Eq. 7), shared by every resolution-aware backbone.

A backbone holds one ``nn.ParameterDict`` per group of residual branches, keyed by range index ("0".."4"),
each entry a (K, 1, 1, 1, 1) tensor: branch k of a block computes ``z + alpha[p, k] * h_k(z)`` for an input
of range p. All start at 1 (the plain network).
"""

from __future__ import annotations

import torch
from torch import nn

from lrpose.resolution import NUM_RANGES


def alpha_rows(n_branches: int) -> nn.ParameterDict:
    """One row of ``n_branches`` alphas per resolution range, all 1: {"0".."4": (n_branches, 1, 1, 1, 1)}."""
    return nn.ParameterDict({str(p): nn.Parameter(torch.ones(n_branches, 1, 1, 1, 1)) for p in range(NUM_RANGES)})


class AlphaRows:
    """Mixin for backbones: progressive initialisation and freezing of the alpha rows. A backbone with its
    alphas elsewhere than ``self.alphas`` overrides ``alpha_dicts``."""

    def alpha_dicts(self) -> list[nn.ParameterDict]:
        return [self.alphas]  # type: ignore[attr-defined]

    def copy_alpha_row(self, src: int, dst: int) -> None:
        """Initialise range ``dst``'s alphas from range ``src`` (progressive training)."""
        with torch.no_grad():
            for alphas in self.alpha_dicts():
                alphas[str(dst)].copy_(alphas[str(src)])

    def set_alphas_trainable(self, trainable: bool) -> None:
        """Freeze the alphas (at their values) for the non-resolution-aware baseline."""
        for alphas in self.alpha_dicts():
            for p in alphas.values():
                p.requires_grad_(trainable)
