"""Self-describing RSC-Net checkpoints, and strict import of the official RSC-Net and SPIN files.

Our format (``torch.save`` of a plain dict, saved atomically)::

    {"format": "lrpose.rscnet", "format_version": 1, "config": {...RSCNetConfig...},
     "state_dict": {...}, "body_id": "standin-anny:...", "mean_params": "standin_mean_params.npz",
     "trained": True, "meta": {...}}

Imports (a bare state dict or ``{"model": state_dict, ...}``):
- official RSC-Net (``RSC-Net.pt``): ResNet-50 keys ``layer1.hmr_layer.0.conv1.weight``, alphas
  ``layer1.alphas.3`` (n_blocks,1,1,1,1), ``layer4_mlp.{0,2}``, SPIN's regressor keys;
- SPIN (``model_checkpoint.pt``): plain ResNet-50 keys ``layer1.0.conv1.weight`` + regressor; alphas
  are set to 1 and the projection head (training-only) keeps its initialisation.
Keys must match exactly: a missing or unexpected key is an error that lists them (only
BatchNorm's ``num_batches_tracked`` counters may be absent). Every file is read with
``torch.load(weights_only=True)``: a checkpoint carrying pickled code is refused.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lrpose.assets import file_digest
from lrpose.errors import AssetFormatError
from lrpose.export import atomic_torch_save
from lrpose.models.regressor import MeanParams
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.models.temporal import TemporalConfig, TemporalModule

FORMAT = "lrpose.rscnet"
FORMAT_VERSION = 1
_REGRESSOR_KEYS = ("fc1.", "fc2.", "decpose.", "deccam.", "decshape.", "init_pose", "init_shape", "init_cam")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a loaded model is."""

    checkpoint_id: str
    """File name and content digest, or 'untrained'; recorded in every output."""
    kind: str
    """'lrpose', 'official-rscnet', 'spin' or 'untrained'."""
    trained: bool
    body_id: str | None
    """Body the weights were trained with ('smpl' for official/SPIN files), None if unknown."""
    config: RSCNetConfig


def same_weights(id_a: str, id_b: str) -> bool:
    """Whether two checkpoint ids (``name:digest``) are the same file contents (names may differ)."""
    return id_a.split(":")[-1] == id_b.split(":")[-1]


def to_official_key(key: str) -> str:
    """Our parameter name -> the official RSC-Net release's name."""
    if key.startswith("backbone."):
        return key[len("backbone.") :]
    if key.startswith("projection."):
        return "layer4_mlp." + key[len("projection.") :]
    if key.startswith("regressor."):
        return key[len("regressor.") :]
    raise KeyError(key)


def from_official_key(key: str) -> str:
    """The official RSC-Net release's name -> ours."""
    if key.startswith("layer4_mlp."):
        return "projection." + key[len("layer4_mlp.") :]
    if key.startswith(_REGRESSOR_KEYS):
        return "regressor." + key
    return "backbone." + key


def spin_to_official_key(key: str) -> str:
    """SPIN's plain ResNet name (``layer1.0.conv1``) -> the official RSC-Net name (``layer1.hmr_layer.0.conv1``)."""
    return re.sub(r"^(layer[1-4])\.(\d+)\.", r"\1.hmr_layer.\2.", key)


def official_state_dict(model: RSCNet) -> dict[str, torch.Tensor]:
    """The model's weights under the official RSC-Net names (for export and tests)."""
    return {to_official_key(k): v for k, v in model.state_dict().items()}


def read_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with refusals and unreadable files as AssetFormatError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AssetFormatError(f"{path}: refused or unreadable checkpoint (only plain tensors are loaded): {first}") from None
    except FileNotFoundError:
        raise AssetFormatError(f"{path} does not exist") from None


def _mean_from_state(sd: dict[str, torch.Tensor], source: str) -> MeanParams:
    try:
        return MeanParams(
            sd["init_pose"].reshape(-1).numpy(), sd["init_shape"].reshape(-1).numpy(), sd["init_cam"].reshape(-1).numpy(), source
        )
    except KeyError as e:
        raise AssetFormatError(f"checkpoint has no regressor initial values ({e.args[0]})") from None


def _load_strict(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, allowed_missing: set[str] = frozenset()) -> None:
    """Load ``sd`` (our key names) into ``model``; any missing/unexpected key or shape mismatch is an error."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and k not in allowed_missing and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        raise AssetFormatError(f"{path}: keys do not match the model; " + "; ".join(parts))
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if k in sd and sd[k].shape != v.shape]
    if bad:
        raise AssetFormatError(f"{path}: tensor shapes do not match the model: {', '.join(bad[:5])}")
    merged = dict(expected)
    merged.update(sd)
    model.load_state_dict(merged, strict=True)


def _build_ours(obj: dict, path: Path, config_cls: type, module_cls: type) -> torch.nn.Module:
    """Model of one of our self-describing checkpoints: version check, config, strict state."""
    if obj.get("format_version") != FORMAT_VERSION:
        raise AssetFormatError(
            f"{path}: checkpoint format version {obj.get('format_version')} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        config = config_cls(**obj["config"])
    except TypeError as e:
        raise AssetFormatError(f"{path}: bad model config in checkpoint: {e}") from None
    sd = obj["state_dict"]
    model = module_cls(config, _mean_from_state({k.removeprefix("regressor."): v for k, v in sd.items()}, str(obj.get("mean_params"))))
    _load_strict(model, sd, path)
    return model


def save_checkpoint(
    path: Path,
    model: RSCNet,
    body_id: str,
    trained: bool = True,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write our self-describing checkpoint atomically (temp file in the same folder + rename).

    ``train_state`` (optimizer, step, queue, ...; plain tensors and numbers) makes it resumable.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "body_id": body_id,
        "mean_params": model.mean_params_source,
        "trained": bool(trained),
        "meta": dict(meta or {}),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    atomic_torch_save(path, payload)


def load_train_state(path: Path) -> dict[str, Any]:
    """The training state stored in one of our checkpoints (for resuming)."""
    obj = read_weights_only(Path(path))
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "train_state" not in obj:
        raise AssetFormatError(f"{path} is not a resumable lrpose training checkpoint")
    return obj["train_state"]


def load_checkpoint(path: Path) -> tuple[RSCNet, CheckpointInfo]:
    """Load ours, an official RSC-Net or a SPIN checkpoint (detected by its keys) into an RSCNet in eval mode."""
    path = Path(path)
    obj = read_weights_only(path)
    ident = f"{path.name}:{file_digest(path)}"
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        model = _build_ours(obj, path, RSCNetConfig, RSCNet)
        return model.eval(), CheckpointInfo(ident, "lrpose", bool(obj.get("trained", False)), obj.get("body_id"), model.config)
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise AssetFormatError(f"{path}: not an lrpose, RSC-Net or SPIN checkpoint (no state dict of tensors found)")
    config = RSCNetConfig(depth=50, input_size=224)
    if any(".hmr_layer." in k for k in sd):
        kind, ours, allowed = "official-rscnet", {from_official_key(k): v for k, v in sd.items()}, set()
    elif "layer1.0.conv1.weight" in sd:
        kind = "spin"
        ours = {from_official_key(spin_to_official_key(k)): v for k, v in sd.items()}
        allowed = {k for k in RSCNet(config, _mean_from_state(sd, "spin")).state_dict() if ".alphas." in k or k.startswith("projection.")}
    else:
        raise AssetFormatError(f"{path}: state dict has neither RSC-Net (layer1.hmr_layer.*) nor SPIN (layer1.0.*) backbone keys")
    model = RSCNet(config, _mean_from_state(sd, kind))
    _load_strict(model, ours, path, allowed)
    return model.eval(), CheckpointInfo(ident, kind, True, "smpl", config)


TEMPORAL_FORMAT = "lrpose.temporal"


@dataclass(frozen=True)
class TemporalInfo:
    """What a loaded temporal module is."""

    checkpoint_id: str
    rscnet_id: str
    """Checkpoint id of the RSC-Net whose features phi it was trained on (it only fits that one)."""
    trained: bool


def save_temporal(path: Path, module: TemporalModule, rscnet_id: str, trained: bool = True, meta: dict[str, Any] | None = None) -> None:
    """Self-describing temporal checkpoint (atomic): config, state, and the RSC-Net it belongs to."""
    atomic_torch_save(
        Path(path),
        {
            "format": TEMPORAL_FORMAT,
            "format_version": FORMAT_VERSION,
            "config": module.config.to_dict(),
            "state_dict": module.state_dict(),
            "mean_params": module.mean_params_source,
            "rscnet_id": rscnet_id,
            "trained": bool(trained),
            "meta": dict(meta or {}),
        },
    )


def load_temporal(path: Path) -> tuple[TemporalModule, TemporalInfo]:
    """Load a temporal module checkpoint (weights only, keys checked strictly) in eval mode."""
    path = Path(path)
    obj = read_weights_only(path)
    if not isinstance(obj, dict) or obj.get("format") != TEMPORAL_FORMAT:
        raise AssetFormatError(f"{path} is not an lrpose temporal-module checkpoint")
    module = _build_ours(obj, path, TemporalConfig, TemporalModule)
    info = TemporalInfo(f"{path.name}:{file_digest(path)}", str(obj.get("rscnet_id")), bool(obj.get("trained", False)))
    return module.eval(), info
