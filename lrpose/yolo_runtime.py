"""Inference runtimes for the YOLO pose detector: the one module that imports ultralytics, OpenVINO
and ONNX Runtime.

``load(weights, runtime)`` gives a ``YoloNet``: letterboxed uint8 RGB image in, ultralytics' own NMS
rows out, whichever runtime computes the network:

  * ``torch``: the checkpoint read with ``torch.load(weights_only=True)`` (ultralytics' safe-load
    allow-list), conv + batch norm fused, channels-last, float32, on the CPU or a CUDA device (``--device``);
  * ``openvino``: the same weights exported once to OpenVINO IR by ultralytics' exporter (dynamic
    height and width, float32), compiled for the CPU once per input shape;
  * ``onnx``: the same exported to ONNX, run by ONNX Runtime;
  * ``auto``: ``torch`` on a CUDA device, else ``openvino`` when it is installed, else ``torch``; an openvino
    that fails to import, export or load falls back to ``torch`` with one warning (the same weights: the
    same detections). OpenVINO and ONNX Runtime run on the CPU here, whatever the device.

Exports are cached under ``$LRPOSE_CACHE_DIR/yolo`` (default ``~/.cache/lrpose/yolo``), one folder per
(checkpoint sha256, format, export size, package versions), written into a temporary folder and
renamed into place, so an interrupted or concurrent export never leaves a half-written model.
Nothing is downloaded: ultralytics' offline switches are set before it is imported and its
auto-install is off (a missing package is an error, never a ``pip install``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrpose.assets import file_sha256
from lrpose.errors import AssetFormatError, InputError, LrposeError

if TYPE_CHECKING:
    import torch

RUNTIMES = ("auto", "openvino", "onnx", "torch")
EXPORT_SIZE = 640
"""Image size the export is traced at (px). Height and width stay dynamic: any multiple of 32 runs."""
_PACKAGES = {"openvino": ("openvino",), "onnx": ("onnxruntime", "onnx")}
"""Packages each exported runtime needs (to export and to run)."""


class RuntimeUnavailable(LrposeError):
    """The asked-for detector runtime cannot be used here (package missing, export or load failed)."""


def ultralytics_offline() -> None:
    """Switch off every network access of ultralytics (downloads, DNS probes, auto-install) and load
    checkpoints weights-only; call before importing ultralytics."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_VERBOSE"] = "False"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), f"lrpose-ultralytics-{os.getuid()}"))


def yolo_available() -> bool:
    """True when ultralytics can be imported (its import needs torchvision's metadata)."""
    ultralytics_offline()
    try:
        import ultralytics  # noqa: F401
    except Exception:  # ImportError, or PackageNotFoundError for torchvision's metadata
        return False
    return True


def _first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters) of an exception."""
    text = (str(e).splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed(package: str) -> bool:
    """True when ``package`` can be found on the path (whether or not it then imports)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def runtime_problem(runtime: str) -> str | None:
    """Why ``runtime`` (openvino | onnx | torch) cannot run here, or None when its packages import."""
    for package in _PACKAGES.get(runtime, ()):
        try:
            __import__(package)
        except Exception as e:  # ImportError, or a broken install failing inside its import
            return f"{package} does not import ({_first_line(e)})" if installed(package) else f"{package} is not installed"
    return None


def choose(runtime: str, device: torch.device | None = None) -> str:
    """The runtime ``runtime`` stands for: ``auto`` -> torch when the detector runs on a CUDA ``device`` (the exported
    runtimes are CPU-only), else openvino when it is installed, else torch (an installed openvino that then fails to
    import or export is a fallback with a warning, in ``load``)."""
    if runtime not in RUNTIMES:
        raise InputError(f"--det-runtime must be one of {', '.join(RUNTIMES)}, not '{runtime}'")
    if runtime == "auto":
        from lrpose.device import on_cuda

        return "torch" if on_cuda(device) or not installed("openvino") else "openvino"
    return runtime


def describe(runtime: str = "auto") -> str:
    """One line for ``lrpose doctor``: which runtime ``runtime`` would use here and with which version."""
    chosen = choose(runtime)
    if chosen == "torch":
        why = " (openvino is not installed: bash tools/install-yolo.sh)" if runtime == "auto" else ""
        return f"torch {_version('torch')}{why}"
    problem = runtime_problem(chosen)
    if problem:
        return f"{chosen}: {problem}" + ("; falls back to torch" if runtime == "auto" else "")
    versions = ", ".join(f"{p} {_version(p)}" for p in _PACKAGES[chosen])
    return f"{chosen} ({versions}; exports cached in {cache_root()})"


def cache_root() -> Path:
    """Folder of the exported models: ``$LRPOSE_CACHE_DIR/yolo``, else ``$XDG_CACHE_HOME/lrpose/yolo``, else ``~/.cache/lrpose/yolo``."""
    if os.environ.get("LRPOSE_CACHE_DIR"):
        return Path(os.environ["LRPOSE_CACHE_DIR"]) / "yolo"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lrpose" / "yolo"


def cache_key(weights: Path, fmt: str, imgsz: int) -> dict:
    """What an export depends on: the checkpoint's bytes, the format, the export size and the versions
    of the packages that write and read it."""
    packages = ("ultralytics", "torch", *_PACKAGES[fmt])
    return {"sha256": file_sha256(weights), "format": fmt, "imgsz": imgsz, "versions": {p: _version(p) for p in packages}}


def export(weights: Path, fmt: str, imgsz: int = EXPORT_SIZE, root: Path | None = None) -> Path:
    """The ``fmt`` (openvino | onnx) export of the YOLO checkpoint ``weights``: its model file (``.xml`` or
    ``.onnx``), made with ultralytics' exporter on the first call and found in the cache afterwards.
    Raises ``RuntimeUnavailable`` (one line) when the runtime's packages are missing or the export fails."""
    problem = runtime_problem(fmt)
    if problem:
        raise RuntimeUnavailable(f"the {fmt} detector runtime cannot be used: {problem} (bash tools/install-yolo.sh)")
    key = cache_key(Path(weights), fmt, imgsz)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_root() if root is None else Path(root)
    final = root / f"{Path(weights).stem}-{fmt}-{digest}"
    model_file = final / ("model.xml" if fmt == "openvino" else "model.onnx")
    if model_file.is_file():
        return model_file
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    except OSError as e:
        raise RuntimeUnavailable(f"cannot write the {fmt} export cache {root}: {e.strerror or e}") from None
    try:
        _export_into(Path(weights), fmt, imgsz, work)
        (work / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True))
        try:
            os.rename(work, final)
        except OSError:  # another process put the same export in place first: keep theirs
            if not model_file.is_file():
                raise
    except RuntimeUnavailable:
        raise
    except Exception as e:
        raise RuntimeUnavailable(f"exporting {Path(weights).name} to {fmt} failed ({_first_line(e)})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model_file


def _export_into(weights: Path, fmt: str, imgsz: int, work: Path) -> None:
    """Run ultralytics' exporter on a copy of ``weights`` in ``work`` (it writes beside its input) and
    leave ``work/model.xml`` + ``model.bin`` or ``work/model.onnx``."""
    ultralytics_offline()
    from ultralytics.engine.exporter import Exporter
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils import LOGGER, SETTINGS

    SETTINGS.update(sync=False)
    src = work / "source.pt"
    shutil.copyfile(weights, src)
    model, _ = load_checkpoint(str(src), device="cpu")
    args = {"format": fmt, "imgsz": imgsz, "dynamic": True, "batch": 1, "device": "cpu"}
    if fmt == "onnx":
        args["simplify"] = False  # onnxslim is not needed (and would be an install)
    level = LOGGER.level
    LOGGER.setLevel(logging.CRITICAL + 1)  # its success and failure lines: lrpose says it in one line
    try:
        with warnings.catch_warnings():  # torch's deprecation notes about the TorchScript-based ONNX export
            warnings.simplefilter("ignore")
            out = Exporter(overrides=args)(model=model.float())
    finally:
        LOGGER.setLevel(level)
    out = Path(out)
    if fmt == "openvino":
        (out / "source.xml").rename(work / "model.xml")
        (out / "source.bin").rename(work / "model.bin")
        shutil.rmtree(out)
    else:
        out.rename(work / "model.onnx")
    src.unlink()


def load_torch_model(weights: Path):  # noqa: ANN202 - an ultralytics PoseModel / DetectionModel
    """The checkpoint read weights-only, float32, eval mode, conv + batch norm fused, channels-last."""
    import torch

    ultralytics_offline()
    try:
        from ultralytics.nn.tasks import load_checkpoint
        from ultralytics.utils import SETTINGS
    except Exception as e:
        raise InputError(f"the yolo detector needs ultralytics (see the README, 'YOLO detector'): {type(e).__name__}: {e}") from None
    SETTINGS.update(sync=False)
    try:
        model, _ = load_checkpoint(str(weights), device="cpu")
    except Exception as e:
        raise AssetFormatError(f"{weights} is not an Ultralytics YOLO checkpoint lrpose can load weights-only ({e})") from None
    model = model.float().eval()
    return (model.fuse(verbose=False) if hasattr(model, "fuse") else model).to(memory_format=torch.channels_last)


class _TorchNet:
    """The fused channels-last torch model on ``device`` (None: the CPU): ``(H, W, 3)`` uint8 RGB (H, W multiples
    of 32) -> raw output ``(1, 4 + classes + keypoints*3, anchors)`` float32 torch tensor on that device (boxes xywh
    in input pixels). The uint8 image goes to the device as it is and becomes float there (float32 also on CUDA:
    half precision would move the scores of tiny people near the thresholds, unmeasured)."""

    def __init__(self, model, device: torch.device | None = None) -> None:  # noqa: ANN001 - an ultralytics model
        import torch

        self.device = torch.device("cpu" if device is None else device)
        self.model, self._torch = model.to(self.device), torch

    def __call__(self, canvas: np.ndarray):  # noqa: ANN204 - torch.Tensor
        from lrpose.device import upload

        torch = self._torch
        image = upload(torch.from_numpy(canvas), self.device)
        x = (image.permute(2, 0, 1)[None].float() / 255.0).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            raw = self.model(x)
        return raw[0] if isinstance(raw, (list, tuple)) else raw


def _nchw(canvas: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(1, 3, H, W)`` float32 in [0, 1], contiguous (the exported models' input)."""
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


class _OpenVinoNet:
    """An OpenVINO IR compiled for the CPU with ``threads`` inference threads, once per input shape (a static
    shape lets the CPU plugin plan its kernels: 210 vs 238 ms CPU per frame for the dynamic model on the
    automatic sizes' mix, benchmarks/RESULTS.md); the ``MAX_SHAPES`` most recent stay compiled. Same call as ``_TorchNet``."""

    MAX_SHAPES = 4

    def __init__(self, model_file: Path, threads: int) -> None:
        import openvino as ov
        import torch

        self._core, self._model_file, self._torch = ov.Core(), model_file, torch
        self._config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        self._requests: dict[tuple[int, int], object] = {}
        self._request((64, 64))  # compile once now: a broken install fails here, inside load()

    def _request(self, hw: tuple[int, int]):  # noqa: ANN202 - openvino.InferRequest
        request = self._requests.pop(hw, None)
        if request is None:
            model = self._core.read_model(self._model_file)
            model.reshape([1, 3, *hw])
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            while len(self._requests) >= self.MAX_SHAPES:
                self._requests.pop(next(iter(self._requests)))
        self._requests[hw] = request  # most recent last
        return request

    def __call__(self, canvas: np.ndarray):  # noqa: ANN204 - torch.Tensor
        out = self._request(canvas.shape[:2]).infer({0: _nchw(canvas)})[0]
        return self._torch.from_numpy(np.array(out, np.float32))


class _OnnxNet:
    """An ONNX model in an ONNX Runtime CPU session with ``threads`` intra-op threads; same call as ``_TorchNet``."""

    def __init__(self, model_file: Path, threads: int) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._torch = torch

    def __call__(self, canvas: np.ndarray):  # noqa: ANN204 - torch.Tensor
        return self._torch.from_numpy(self._session.run(None, {self._input: _nchw(canvas)})[0])


class YoloNet:
    """A YOLO checkpoint on one runtime: ``names`` (class id -> name), ``kpt_shape`` ((17, 3) for a COCO
    pose model, None for a detect model), ``runtime`` (torch | openvino | onnx) and ``detect``."""

    def __init__(self, net, names: dict[int, str], kpt_shape: tuple[int, int] | None, runtime: str) -> None:  # noqa: ANN001
        from ultralytics.utils.nms import non_max_suppression

        self.net, self.names, self.kpt_shape, self.runtime = net, names, kpt_shape, runtime
        self._nms = non_max_suppression

    def detect(self, canvas: np.ndarray, conf: float, iou: float, classes: list[int]) -> np.ndarray:
        """One letterboxed ``(H, W, 3)`` uint8 RGB image (H, W multiples of 32) -> ``(N, 6 + K*3)`` float32
        rows ``x1, y1, x2, y2, score, class, keypoints (x, y, conf)...`` in canvas pixels, best first
        (ultralytics' ``non_max_suppression``, the same for every runtime, on the network's device)."""
        raw = self.net(canvas)
        return self._nms(raw, conf_thres=conf, iou_thres=iou, classes=classes, nc=len(self.names))[0].cpu().numpy()


def load(
    weights: Path, runtime: str = "auto", threads: int | None = None, root: Path | None = None, device: torch.device | None = None
) -> tuple[YoloNet, str | None]:
    """The YOLO checkpoint ``weights`` on ``runtime`` (``RUNTIMES``) with ``threads`` CPU threads (None:
    torch's count), and a warning line when ``auto`` had to fall back to torch (else None). An explicit
    openvino / onnx that cannot be used raises ``RuntimeUnavailable``; ``root``: the export cache folder.
    ``device`` (torch.device or None: the CPU): where the torch runtime runs (``choose``: ``auto`` is torch on CUDA)."""
    import torch

    chosen = choose(runtime, device)
    model = load_torch_model(Path(weights))  # also checks the file and gives the names and keypoint shape
    names = dict(model.names)
    shape = getattr(model, "kpt_shape", None) or getattr(model, "yaml", {}).get("kpt_shape")
    kpt_shape = tuple(shape) if shape is not None else None
    if chosen == "torch":
        return YoloNet(_TorchNet(model, device), names, kpt_shape, "torch"), None
    threads = threads or torch.get_num_threads()
    try:
        model_file = export(Path(weights), chosen, root=root)
        try:
            net = _OpenVinoNet(model_file, threads) if chosen == "openvino" else _OnnxNet(model_file, threads)
        except Exception as e:
            raise RuntimeUnavailable(f"the {chosen} export {model_file} does not load ({_first_line(e)})") from None
    except RuntimeUnavailable as e:
        if runtime != "auto":
            raise
        return YoloNet(_TorchNet(model, device), names, kpt_shape, "torch"), f"{e}; the detector runs on torch (same weights)"
    del model
    return YoloNet(net, names, kpt_shape, chosen), None
