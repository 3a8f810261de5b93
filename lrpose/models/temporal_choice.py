"""Which temporal module goes with which RSC-Net weights.

The GRU reads the per-frame features phi of ONE RSC-Net: paired with another network's features it
produces confident nonsense, so a pairing is never made silently. A temporal module fits an RSC-Net
when it was trained on its features:

- a temporal file (``lrpose.temporal``) names its RSC-Net by checkpoint id (``rscnet_id``: file name
  and content digest); it fits when that digest is the RSC-Net file's (``temporal_mismatch``);
- an RSC-Net file written by ``lrpose adapt`` may carry its own adapted temporal module under
  ``"temporal"`` (a whole temporal payload, ``temporal_entry``), tied to the RSC-Net's weights by
  their digest (``rscnet_weights_sha256``, :func:`lrpose.models.checkpoint.weights_digest`): one file
  carries both, and an entry copied next to other weights is refused (``embedded_temporal``).

``find_temporal`` decides for a video run: ``--temporal-weights`` (must fit, else InputError) >
the RSC-Net file's own module > the resolver's temporal file when it fits (else off, with a note) >
none. Inference only: nothing here imports ``lrpose.training``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrpose.errors import AssetFormatError, InputError
from lrpose.models.checkpoint import (
    NetInfo,
    find_asset,
    load_temporal,
    module_from,
    payload_of,
    read_weights_only,
    same_weights,
    weights_digest,
)
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalModule

ENTRY = "temporal"
"""Top-level key of an RSC-Net file under which its own temporal module is stored."""


def temporal_entry(module: TemporalModule, rscnet: RSCNet, body_id: str | None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{ENTRY: payload}`` for ``checkpoint.save(..., extra=...)`` of ``rscnet``: ``module``'s whole
    temporal payload plus the digest of the RSC-Net weights whose features it was trained on."""
    payload = payload_of(module, body_id, trained=True, meta=meta)
    payload["rscnet_weights_sha256"] = weights_digest(rscnet.state_dict())
    return {ENTRY: payload}


def embedded_temporal(rscnet: RSCNet, rscnet_info: NetInfo) -> tuple[TemporalModule, NetInfo] | str | None:
    """The temporal module stored in ``rscnet``'s own file (``rscnet_info.path``), paired with it:
    (module, info) when it fits, the reason (str) when the entry belongs to other weights, None when
    the file has none. AssetFormatError when the entry is damaged."""
    if rscnet_info.path is None or rscnet_info.source != "lrpose":
        return None
    obj = read_weights_only(Path(rscnet_info.path))
    entry = obj.get(ENTRY) if isinstance(obj, dict) else None
    if entry is None:
        return None
    where = f"{rscnet_info.path} (its '{ENTRY}' entry)"
    if not isinstance(entry, dict):
        raise AssetFormatError(f"{where} is not a temporal module")
    module = module_from(entry, where, TemporalModule)
    if entry.get("rscnet_weights_sha256") != weights_digest(rscnet.state_dict()) or module.config.feat_dim != rscnet.feature_dim:
        return f"the temporal module stored in {Path(rscnet_info.path).name} was trained on other RSC-Net weights than the file's own"
    info = NetInfo(f"{rscnet_info.checkpoint_id}#{ENTRY}", "temporal", "lrpose", bool(entry.get("trained", False)),
                   entry.get("body_id"), rscnet_info.checkpoint_id, rscnet_info.path)  # fmt: skip
    return module, info


def stored_temporal_meta(path: Path) -> dict[str, Any] | None:
    """The ``meta`` of the temporal module an RSC-Net file carries (``lrpose doctor``), None without one."""
    obj = read_weights_only(Path(path))
    entry = obj.get(ENTRY) if isinstance(obj, dict) else None
    if not isinstance(entry, dict):
        return None
    meta = entry.get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


def temporal_mismatch(module: TemporalModule, info: NetInfo, rscnet: RSCNet, rscnet_info: NetInfo) -> str | None:
    """Why a temporal module does not fit an RSC-Net (None when it does): it reads the features phi
    of the one RSC-Net it was trained on, so the file contents must be the same."""
    if same_weights(str(info.parent_id), rscnet_info.checkpoint_id) and module.config.feat_dim == rscnet.feature_dim:
        return None
    return f"{info.checkpoint_id.split(':')[0]} was trained on the features of {info.parent_id}, not of {rscnet_info.checkpoint_id}"


@dataclass(frozen=True)
class TemporalChoice:
    """The temporal module a video run uses (``module`` None: per-frame results)."""

    module: TemporalModule | None
    info: NetInfo | None
    line: str
    """What runs, for the console and the outputs' ``temporal`` field."""
    note: str | None = None
    """Set when a found module was switched off because it belongs to another RSC-Net."""


def find_temporal(weights: Path | None, rscnet: RSCNet, rscnet_info: NetInfo, enabled: bool = True) -> TemporalChoice:
    """The temporal module for ``rscnet``: ``weights`` (must exist and fit: else InputError), else the
    one stored in the RSC-Net's own file when it fits, else the resolver's when it fits (else off,
    with a note), else none."""
    if not enabled:
        return TemporalChoice(None, None, "off (--no-temporal): per-frame results")
    own = embedded_temporal(rscnet, rscnet_info) if weights is None else None
    if isinstance(own, tuple):
        module, info = own
        return TemporalChoice(module, info, f"GRU {info.checkpoint_id} (adapted with this RSC-Net, stored in its file)")
    path = find_asset("temporal", weights)
    if path is None:
        if isinstance(own, str):
            return TemporalChoice(None, None, f"off ({own})", f"temporal module off: {own} (per-frame results)")
        return TemporalChoice(None, None, "off (no temporal checkpoint found): per-frame results")
    module, info = load_temporal(path)
    why = temporal_mismatch(module, info, rscnet, rscnet_info)
    if why is not None:
        if weights is not None:
            raise InputError(f"--temporal-weights: {why}; train one for this RSC-Net with 'lrpose train temporal'")
        why = f"{own}; {why}" if isinstance(own, str) else why
        return TemporalChoice(None, None, f"off ({why})", f"temporal module off: {why} (per-frame results)")
    return TemporalChoice(module, info, f"GRU {info.checkpoint_id}" + ("" if info.trained else " (UNTRAINED)"))
