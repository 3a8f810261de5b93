"""Parameter names of the official RSC-Net release and of SPIN, mapped to ours (pure functions).

- official RSC-Net (``RSC-Net.pt``): ResNet-50 keys ``layer1.hmr_layer.0.conv1.weight``, alphas
  ``layer1.alphas.3`` (n_blocks,1,1,1,1), ``layer4_mlp.{0,2}``, SPIN's regressor keys;
- SPIN (``model_checkpoint.pt``): plain ResNet-50 keys ``layer1.0.conv1.weight`` + regressor.
Reading the files is ``lrpose.models.checkpoint``'s job; this module only renames.
"""

from __future__ import annotations

import re

REGRESSOR_KEYS = ("fc1.", "fc2.", "decpose.", "deccam.", "decshape.", "init_pose", "init_shape", "init_cam")


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
