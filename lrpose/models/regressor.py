"""HMR/SPIN iterative SMPL regressor: 3 iterations of [phi, pose 24x6, shape 10, cam 3] ->
fc 1024 -> (ReLU) -> dropout -> fc 1024 -> (ReLU) -> dropout -> residual updates, starting from mean parameters.

Two head variants share the same parameters (``HEADS``): ``"rscnet"`` (the official RSC-Net
``models/hmr.py``: a ReLU after ``fc1`` and after ``fc2``) and ``"spin"`` (SPIN's ``models/hmr.py``:
no ReLU, the fc layers are purely linear). Parameter names match SPIN / the official RSC-Net
(``fc1``, ``decpose``, ``init_pose``, ...). Pose is rot6d in SPIN's layout (see ``lrpose.geometry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lrpose.errors import AssetFormatError

NPOSE = 24 * 6
HEADS = ("rscnet", "spin")
"""Head variants: with a ReLU after fc1/fc2 (RSC-Net) or without (SPIN)."""


@dataclass(frozen=True)
class MeanParams:
    """Initial values of the iterative regressor (SPIN's ``smpl_mean_params.npz`` layout)."""

    pose6d: np.ndarray
    """(144,) rot6d of 24 joints, root first (camera frame: the root includes the 180 deg flip about x)."""
    shape: np.ndarray
    """(10,) betas."""
    cam: np.ndarray
    """(3,) weak-perspective crop camera ``[s, tx, ty]``."""
    source: str
    """Where they came from (file name), recorded in checkpoints."""


def load_mean_params(path: Path) -> MeanParams:
    """Read ``pose`` (144), ``shape`` (10), ``cam`` (3) from an ``.npz`` (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            pose, shape, cam = (np.asarray(z[k], np.float32).reshape(-1) for k in ("pose", "shape", "cam"))
    except (KeyError, ValueError, OSError) as e:
        raise AssetFormatError(f"{path} is not a mean-parameter file with pose/shape/cam arrays: {e}") from None
    if pose.shape != (NPOSE,) or shape.shape != (10,) or cam.shape != (3,):
        raise AssetFormatError(f"{path}: expected pose (144,), shape (10,), cam (3,), got {pose.shape}, {shape.shape}, {cam.shape}")
    return MeanParams(pose, shape, cam, Path(path).name)


class IterativeRegressor(nn.Module):
    """(B, D) pooled features -> rot6d pose (B, 144), betas (B, 10), crop camera (B, 3).

    ``head`` is one of ``HEADS``: "rscnet" applies a ReLU after fc1 and fc2, "spin" does not.
    """

    def __init__(self, feat_dim: int, mean: MeanParams, n_iter: int = 3, head: str = "rscnet") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got '{head}'")
        self.n_iter = n_iter
        self.head = head
        self.fc1 = nn.Linear(feat_dim + NPOSE + 13, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.relu = nn.ReLU(inplace=True) if head == "rscnet" else nn.Identity()
        self.decpose = nn.Linear(1024, NPOSE)
        self.decshape = nn.Linear(1024, 10)
        self.deccam = nn.Linear(1024, 3)
        for dec in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(dec.weight, gain=0.01)
        self.register_buffer("init_pose", torch.as_tensor(mean.pose6d, dtype=torch.float32)[None])
        self.register_buffer("init_shape", torch.as_tensor(mean.shape, dtype=torch.float32)[None])
        self.register_buffer("init_cam", torch.as_tensor(mean.cam, dtype=torch.float32)[None])

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = feat.shape[0]
        pose, shape, cam = self.init_pose.expand(b, -1), self.init_shape.expand(b, -1), self.init_cam.expand(b, -1)
        for _ in range(self.n_iter):
            x = torch.cat([feat, pose, shape, cam], dim=1)
            x = self.drop1(self.relu(self.fc1(x)))
            x = self.drop2(self.relu(self.fc2(x)))
            pose = self.decpose(x) + pose
            shape = self.decshape(x) + shape
            cam = self.deccam(x) + cam
        return pose, shape, cam
