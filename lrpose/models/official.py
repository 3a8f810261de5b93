"""Parameter names of the official RSC-Net release and of SPIN, mapped to ours (pure functions).

- official RSC-Net (``RSC-Net.pt``): ResNet-50 keys ``layer1.hmr_layer.0.conv1.weight``, alphas
  ``layer1.alphas.3`` (n_blocks,1,1,1,1), ``layer4_mlp.{0,2}``, SPIN's regressor keys;
- SPIN (``model_checkpoint.pt``): plain ResNet-50 keys ``layer1.0.conv1.weight`` + regressor.
Reading the files is ``lrpose.models.checkpoint``'s job; this module only renames and tells the
layouts apart. The two share the regressor's parameter names but not its forward: the official
RSC-Net head has a ReLU after ``fc1`` and ``fc2``, SPIN's has none (``head_for``).
"""

from __future__ import annotations

import re

REGRESSOR_KEYS = ("fc1.", "fc2.", "decpose.", "deccam.", "decshape.", "init_pose", "init_shape", "init_cam")
HEAD_OF_SOURCE = {"official-rscnet": "rscnet", "spin": "spin"}
"""Regressor head variant (``lrpose.models.regressor.HEADS``) each official layout was trained with."""


def detect_layout(state_dict: dict) -> str | None:
    """'official-rscnet' (``layer1.hmr_layer.*`` keys), 'spin' (plain ``layer1.0.*``), or None."""
    if any(".hmr_layer." in k for k in state_dict):
        return "official-rscnet"
    if "layer1.0.conv1.weight" in state_dict:
        return "spin"
    return None


def head_for(source: str) -> str:
    """The regressor head of an official layout: 'rscnet' (ReLU after fc1/fc2) or 'spin' (none)."""
    return HEAD_OF_SOURCE[source]


def from_official_key(key: str) -> str:
    """The official RSC-Net release's name -> ours."""
    if key.startswith("layer4_mlp."):
        return "projection." + key[len("layer4_mlp.") :]
    if key.startswith(REGRESSOR_KEYS):
        return "regressor." + key
    return "backbone." + key


def spin_to_official_key(key: str) -> str:
    """SPIN's plain ResNet name (``layer1.0.conv1``) -> the official RSC-Net name (``layer1.hmr_layer.0.conv1``)."""
    return re.sub(r"^(layer[1-4])\.(\d+)\.", r"\1.hmr_layer.\2.", key)
