"""Temporal recurrent module (paper Sec. 3.5, after VIBE): a 2-layer GRU over the per-frame
RSC-Net features phi, a residual linear map back to phi's size, then the iterative SMPL regressor
(3 linear layers: the paper's "3-layer MLP").

The GRU is causal (one direction), so the pipeline runs it online, one frame at a time per track,
carrying each track's hidden state: memory does not grow with the video. ``from_rscnet`` copies
the RSC-Net's regressor and zeroes the residual map, so an untrained module reproduces the
per-frame results exactly; training only has to learn the correction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from lrpose.geometry import rot6d_to_rotmat
from lrpose.models.regressor import IterativeRegressor, MeanParams


@dataclass(frozen=True)
class TemporalConfig:
    """Architecture of the temporal module (stored in its checkpoint)."""

    feat_dim: int = 512
    """Size of phi (512 for ResNet-18/34 RSC-Nets, 2048 for ResNet-50)."""
    hidden: int = 1024
    """GRU hidden size (VIBE: 1024)."""
    layers: int = 2
    """GRU layers (paper: 2)."""
    n_iter: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TemporalOutput:
    """Smoothed per-frame outputs, (B, T, ...)."""

    pose6d: torch.Tensor
    """(B, T, 144) rot6d, SPIN layout."""
    rotmats: torch.Tensor
    """(B, T, 24, 3, 3)."""
    betas: torch.Tensor
    """(B, T, 10)."""
    cam: torch.Tensor
    """(B, T, 3) weak-perspective crop camera."""
    state: torch.Tensor
    """(layers, B, hidden) GRU state after the last frame (feed it back for the next frames)."""


class TemporalModule(nn.Module):
    """``forward(features (B, T, D), state=None) -> TemporalOutput``."""

    def __init__(self, config: TemporalConfig, mean: MeanParams) -> None:
        super().__init__()
        self.config = config
        self.mean_params_source = mean.source
        self.gru = nn.GRU(config.feat_dim, config.hidden, config.layers, batch_first=True)
        self.linear = nn.Linear(config.hidden, config.feat_dim)
        self.regressor = IterativeRegressor(config.feat_dim, mean, config.n_iter)

    @classmethod
    def from_rscnet(cls, rscnet: nn.Module, config: TemporalConfig | None = None) -> TemporalModule:
        """A module that starts as the identity on ``rscnet``'s predictions (regressor copied, residual zero)."""
        config = config or TemporalConfig(feat_dim=rscnet.feature_dim, n_iter=rscnet.config.n_iter)
        if config.feat_dim != rscnet.feature_dim:
            raise ValueError(f"feat_dim {config.feat_dim} != the RSC-Net's feature size {rscnet.feature_dim}")
        reg = rscnet.regressor
        mean = MeanParams(reg.init_pose[0].numpy(), reg.init_shape[0].numpy(), reg.init_cam[0].numpy(), rscnet.mean_params_source)
        module = cls(config, mean)
        module.regressor.load_state_dict(reg.state_dict())
        nn.init.zeros_(module.linear.weight)
        nn.init.zeros_(module.linear.bias)
        return module

    def forward(self, features: torch.Tensor, state: torch.Tensor | None = None) -> TemporalOutput:
        b, t, d = features.shape
        y, state = self.gru(features, state)
        pose6d, rotmats, betas, cam = self._head(y.reshape(b * t, -1), features.reshape(b * t, d))
        return TemporalOutput(
            pose6d.reshape(b, t, -1), rotmats.reshape(b, t, 24, 3, 3), betas.reshape(b, t, 10), cam.reshape(b, t, 3), state
        )

    def _head(self, y: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, hidden) GRU outputs and their (N, D) input features -> rot6d, rotations, betas, cameras (N, ...)."""
        pose6d, betas, cam = self.regressor(self.linear(y) + features)  # VIBE's residual connection
        return pose6d, rot6d_to_rotmat(pose6d.reshape(-1, 24, 6)), betas, cam

    def sequences(self, features: list[torch.Tensor], state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Several tracks' frames at once: ``features`` R sequences (T_r, D) of different lengths, ``state``
        (layers, R, hidden) each one's start -> rotations (N, 24, 3, 3), betas (N, 10), cameras (N, 3) for
        the N = sum T_r frames, sequence after sequence, and (layers, R, hidden) each sequence's final
        state. The same numbers as ``forward`` one sequence at a time; one GRU call and one regressor
        call for all (the regressor's weights are read once, not once per frame)."""
        lengths = torch.tensor([len(f) for f in features], device="cpu")  # pack_padded_sequence wants them on the host
        padded = nn.utils.rnn.pad_sequence(features, batch_first=True)
        packed = nn.utils.rnn.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        y, state = self.gru(packed, state)
        y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True)
        valid = torch.arange(padded.shape[1], device=padded.device)[None] < lengths.to(padded.device)[:, None]  # (R, T): row-major
        _, rotmats, betas, cam = self._head(y[valid], padded[valid])
        return rotmats, betas, cam, state
