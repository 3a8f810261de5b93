"""THE one place that reads and writes network files: RSC-Net, temporal module, texture network, pretrained backbones.

Our format (``torch.save`` of a plain dict, written atomically)::

    {"format": "lrpose.rscnet" | "lrpose.temporal" | "lrpose.texture", "format_version": 1,
     "config": {...}, "state_dict": {...}, "body_id": "standin-anny:...", "trained": True,
     "mean_params": "standin_mean_params.npz",   # RSC-Net and temporal module
     "rscnet_id": "lrpose_rscnet.pt:78e7131d09",  # temporal module: the RSC-Net whose features it reads
     "meta": {...}, "train_state": {...}}         # train_state (step, optimizer, RNG, ...) only in run checkpoints

RSC-Net files may also be the official release or SPIN's (detected by their keys, renamed by ``lrpose.models.official``; SPIN gets
alpha = 1). The regressor head variant travels in the config (``RSCNetConfig.head``): our files record the one they were trained
with (files written before the field existed are "rscnet"); an official RSC-Net file runs the "rscnet" head (ReLU after fc1/fc2), a
SPIN file SPIN's head without ReLU (``official.head_for``). Keys must match exactly: a missing or unexpected key is an error that
lists them (only BatchNorm's ``num_batches_tracked`` may be absent). Every file is read with ``torch.load(weights_only=True)``: a
checkpoint carrying pickled code is refused, with lrpose's own message (never torch's advice to load it unsafely).

Integrity: before torch reads a file, every member of its zip container is checked against its CRC (torch does not); our files also
carry ``weights_sha256`` (:func:`weights_digest` of the state dict), verified at load when present (files written before it existed
load without). Weights holding NaN or infinity are refused, so a damaged or diverged checkpoint never produces a result.

``find_*`` choose the network an inference command uses: the given file (must exist), else the one the asset resolver finds, else
(RSC-Net, texture) an UNTRAINED seeded network flagged ``trained=False``, which callers must announce loudly."""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lrpose import assets
from lrpose.errors import AssetFormatError
from lrpose.files import atomic_torch_save
from lrpose.models import official
from lrpose.models.official import from_official_key, spin_to_official_key
from lrpose.models.regressor import MeanParams, load_mean_params
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from lrpose.models.temporal import TemporalConfig, TemporalModule
from lrpose.models.texture import TexGlo, TexGloConfig

if TYPE_CHECKING:
    from lrpose.body import BodyModel

FORMAT_VERSION = 1
FORMATS = {RSCNet: "lrpose.rscnet", TemporalModule: "lrpose.temporal", TexGlo: "lrpose.texture"}
UNTRAINED_SEED = 0
UNTRAINED_ID = f"untrained(seed={UNTRAINED_SEED})"


@dataclass(frozen=True)
class NetInfo:
    """What a loaded network is; recorded in every output it produces."""

    checkpoint_id: str
    """``file name:content digest``, or ``untrained(seed=0)``."""
    kind: str
    """'rscnet', 'temporal' or 'texture'."""
    source: str
    """'lrpose', 'official-rscnet', 'spin' or 'untrained'."""
    trained: bool
    body_id: str | None
    """Body the weights were trained with ('smpl' for official/SPIN files), None if unknown."""
    parent_id: str | None = None
    """Temporal module: the RSC-Net checkpoint whose features phi it was trained on (it only fits that one)."""
    path: str | None = None
    """The file it was read from (None: untrained); an RSC-Net file may carry its own temporal module."""


def same_weights(id_a: str, id_b: str) -> bool:
    """Whether two checkpoint ids (``name:digest``) are the same file contents (names may differ)."""
    return id_a.split(":")[-1] == id_b.split(":")[-1]


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over a state dict's names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _zip_damage(path: Path) -> str | None:
    """Why the zip container of a checkpoint is damaged (a member failing its CRC, a broken member),
    None when intact or not a zip (torch's legacy format: torch itself rejects a damaged one)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as e:
        return f"its zip container is broken ({type(e).__name__})"
    return f"member {bad} fails its CRC check" if bad else None


def _refusal(e: Exception) -> str:
    """lrpose's words for an exception of ``torch.load``: torch's own text may advise loading the file
    with ``weights_only=False``, which would run any code it carries, so it is never passed on."""
    if isinstance(e, pickle.UnpicklingError):
        found = re.search(r"GLOBAL ([A-Za-z_][\w.]{0,80})", str(e))
        what = f"it references {found.group(1)}" if found else "it holds pickled objects"
        return f"refused: {what}, not only plain tensors; lrpose never runs code from a checkpoint"
    return f"damaged, truncated or not a PyTorch checkpoint ({type(e).__name__} while reading it)"


def read_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` after the container's CRC check; a damaged, unreadable or
    refused file is an AssetFormatError with lrpose's own one-line message."""
    path = Path(path)
    if not path.is_file():
        raise AssetFormatError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    damage = _zip_damage(path)
    if damage is not None:
        raise AssetFormatError(f"{path} is damaged: {damage}; re-download or restore it")
    try:
        with warnings.catch_warnings():  # torch's warnings about the pickle protocol of a refused file
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise AssetFormatError(f"{path} cannot be read ({e.strerror})") from None
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError, TypeError, KeyError, IndexError, OSError) as e:
        raise AssetFormatError(f"{path}: {_refusal(e)}") from None


def _ident(path: Path) -> str:
    return f"{path.name}:{assets.file_digest(path)}"


def _mean_from_state(sd: dict[str, torch.Tensor], source: str) -> MeanParams:
    try:
        return MeanParams(
            sd["init_pose"].reshape(-1).numpy(), sd["init_shape"].reshape(-1).numpy(), sd["init_cam"].reshape(-1).numpy(), source
        )
    except KeyError as e:
        raise AssetFormatError(f"checkpoint has no regressor initial values ({e.args[0]})") from None


def load_strict(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, allowed_missing: set[str] = frozenset()) -> None:
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
    nonfinite = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise AssetFormatError(
            f"{path}: {len(nonfinite)} weight tensor(s) hold NaN or infinite values ({', '.join(nonfinite[:3])}"
            f"{' ...' if len(nonfinite) > 3 else ''}); the checkpoint is unusable (a diverged or damaged training run?)"
        )
    merged = dict(expected)
    merged.update(sd)
    model.load_state_dict(merged, strict=True)


def _read_ours(path: Path, module_cls: type) -> tuple[torch.nn.Module, dict]:
    """(module in eval mode, the file's dict) of one of our checkpoints of ``module_cls``'s format."""
    obj = read_weights_only(path)
    return module_from(obj, path, module_cls), obj


def module_from(obj: Any, path: Path | str, module_cls: type) -> torch.nn.Module:
    """The network (eval mode) of one of our checkpoint dicts ``obj`` of ``module_cls``'s format (a whole
    file's or one stored inside another file; ``path`` names it in errors); AssetFormatError otherwise."""
    fmt = FORMATS[module_cls]
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise AssetFormatError(f"{path} is not an lrpose {fmt.split('.')[1]} checkpoint")
    if obj.get("format_version") != FORMAT_VERSION:
        raise AssetFormatError(
            f"{path}: checkpoint format version {obj.get('format_version')} is not supported (expected {FORMAT_VERSION})"
        )
    config_cls = {RSCNet: RSCNetConfig, TemporalModule: TemporalConfig, TexGlo: TexGloConfig}[module_cls]
    try:
        config = config_cls(**obj["config"])
    except (TypeError, KeyError, ValueError) as e:
        raise AssetFormatError(f"{path}: bad model config in checkpoint: {e}") from None
    sd = obj.get("state_dict")
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise AssetFormatError(f"{path}: lrpose {fmt.split('.')[1]} checkpoint without its weights (no 'state_dict' of tensors)")
    digest = obj.get("weights_sha256")
    if digest is not None and digest != weights_digest(sd):
        raise AssetFormatError(f"{path} is damaged: its weights do not match the digest stored in it; re-download or restore it")
    if module_cls is TexGlo:
        module = TexGlo(config)
    else:
        regressor = {k.removeprefix("regressor."): v for k, v in sd.items()}
        module = module_cls(config, _mean_from_state(regressor, str(obj.get("mean_params"))))
    load_strict(module, sd, path)
    return module.eval()


def save(
    path: Path,
    module: RSCNet | TemporalModule | TexGlo,
    body_id: str | None,
    trained: bool = True,
    parent_id: str | None = None,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``module`` as our self-describing checkpoint, atomically (temp file + rename), with the
    digest of its weights (``weights_sha256``) that loading verifies.

    ``parent_id``: for a temporal module, the RSC-Net checkpoint id it belongs to. ``train_state``
    (step, optimizer, RNG, config, ...; plain tensors and numbers) makes the file resumable. ``extra``:
    more top-level entries (an adapted RSC-Net's own temporal module, ``lrpose.models.temporal_choice``).
    """
    atomic_torch_save(Path(path), {**payload_of(module, body_id, trained, parent_id, meta, train_state), **(extra or {})})


def payload_of(
    module: RSCNet | TemporalModule | TexGlo,
    body_id: str | None,
    trained: bool = True,
    parent_id: str | None = None,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict ``save`` writes for ``module`` (see the module doc)."""
    state_dict = module.state_dict()
    payload: dict[str, Any] = {
        "format": FORMATS[type(module)],
        "format_version": FORMAT_VERSION,
        "config": module.config.to_dict(),
        "state_dict": state_dict,
        "weights_sha256": weights_digest(state_dict),
        "body_id": body_id,
        "trained": bool(trained),
        "meta": dict(meta or {}),
    }
    if hasattr(module, "mean_params_source"):
        payload["mean_params"] = module.mean_params_source
    if parent_id is not None:
        payload["rscnet_id"] = parent_id
    if train_state is not None:
        payload["train_state"] = train_state
    return payload


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` dict of one of our checkpoints (how it was made: steps, recipe, ``adapt``
    provenance); {} for official / SPIN files. AssetFormatError for an unreadable file."""
    obj = read_weights_only(Path(path))
    if not isinstance(obj, dict) or obj.get("format") not in FORMATS.values():
        return {}
    meta = obj.get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


def load_train_state(path: Path) -> dict[str, Any]:
    """The training state stored in one of our run checkpoints (for resuming)."""
    obj = read_weights_only(Path(path))
    if not isinstance(obj, dict) or obj.get("format") not in FORMATS.values():
        raise AssetFormatError(f"{path} is not an lrpose checkpoint")
    state = obj.get("train_state")
    if state is None and isinstance(obj.get("meta"), dict) and "optimizer" in obj["meta"]:
        state = obj["meta"]  # temporal runs of lrpose 0.1 kept their state under "meta"
    if not isinstance(state, dict):
        raise AssetFormatError(f"{path} is not a resumable lrpose training checkpoint")
    return state


def load_rscnet(path: Path) -> tuple[RSCNet, NetInfo]:
    """Load ours, an official RSC-Net or a SPIN checkpoint (detected by its keys) into an RSCNet in eval mode.

    The head variant: ours from the file's config, official RSC-Net "rscnet", SPIN "spin" (no ReLU)."""
    path = Path(path)
    obj = read_weights_only(path)
    if isinstance(obj, dict) and obj.get("format") == FORMATS[RSCNet]:
        model = module_from(obj, path, RSCNet)  # the file is already read: not again through _read_ours
        return model, NetInfo(_ident(path), "rscnet", "lrpose", bool(obj.get("trained", False)), obj.get("body_id"), path=str(path))
    sd = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise AssetFormatError(f"{path}: not an lrpose, RSC-Net or SPIN checkpoint (no state dict of tensors found)")
    source = official.detect_layout(sd)
    if source is None:
        raise AssetFormatError(f"{path}: state dict has neither RSC-Net (layer1.hmr_layer.*) nor SPIN (layer1.0.*) backbone keys")
    config = RSCNetConfig(depth=50, input_size=224, head=official.head_for(source))
    if source == "official-rscnet":
        ours, allowed = {from_official_key(k): v for k, v in sd.items()}, set()
    else:
        ours = {from_official_key(spin_to_official_key(k)): v for k, v in sd.items()}
        allowed = {k for k in RSCNet(config, _mean_from_state(sd, "spin")).state_dict() if ".alphas." in k or k.startswith("projection.")}
    model = RSCNet(config, _mean_from_state(sd, source))
    load_strict(model, ours, path, allowed)
    return model.eval(), NetInfo(_ident(path), "rscnet", source, True, "smpl", path=str(path))


def load_temporal(path: Path) -> tuple[TemporalModule, NetInfo]:
    """Load a temporal module checkpoint (weights only, keys checked strictly) in eval mode."""
    module, obj = _read_ours(Path(path), TemporalModule)
    info = NetInfo(_ident(Path(path)), "temporal", "lrpose", bool(obj.get("trained", False)), obj.get("body_id"), str(obj.get("rscnet_id")))
    return module, info


def load_texture(path: Path) -> tuple[TexGlo, NetInfo]:
    """Load a texture network checkpoint (weights only, keys checked strictly) in eval mode."""
    net, obj = _read_ours(Path(path), TexGlo)
    return net, NetInfo(_ident(Path(path)), "texture", "lrpose", bool(obj.get("trained", False)), obj.get("body_id"))


def default_mean_params(body: BodyModel) -> MeanParams:
    """SPIN's mean parameters for the real SMPL when present, else the stand-in's shipped ones."""
    if body.name == "smpl":
        spin = assets.locate("smpl_mean_params").path
        if spin is not None:
            return load_mean_params(spin)
    return load_mean_params(assets.resolve("standin_mean_params"))


def find_asset(key: str, weights: Path | None) -> Path | None:
    return assets.resolve(key, weights) if weights is not None else assets.locate(key).path


def find_rscnet(weights: Path | None, body: BodyModel) -> tuple[RSCNet, NetInfo]:
    """The RSC-Net to use: ``weights`` if given (must exist), else the one the resolver finds, else an
    UNTRAINED model (seeded, ``trained=False``; callers must warn loudly)."""
    path = find_asset("rscnet", weights)
    if path is not None:
        return load_rscnet(path)
    torch.manual_seed(UNTRAINED_SEED)
    model = RSCNet(RSCNetConfig(), default_mean_params(body))
    return model.eval(), NetInfo(UNTRAINED_ID, "rscnet", "untrained", False, None)


def find_texture(weights: Path | None) -> tuple[TexGlo, NetInfo]:
    """The texture network: ``weights``, else the resolver's, else an UNTRAINED seeded one (``trained=False``)."""
    path = find_asset("texture", weights)
    if path is not None:
        return load_texture(path)
    torch.manual_seed(UNTRAINED_SEED)
    return TexGlo(TexGloConfig()).eval(), NetInfo(UNTRAINED_ID, "texture", "untrained", False, None)
