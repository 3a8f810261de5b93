"""Where the networks and the keypoint fit run (``--device auto|cpu|cuda``): the one choice of a torch
device and the two moves across it, host -> device (``upload``) and device -> host (``host``).

On the CPU both moves are no-ops (the tensor itself): the CPU path is the same code with the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from lrpose.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
"""``--device`` values: auto (cuda when torch sees a CUDA device, else cpu) | cpu | cuda."""


def pick_device(name: str) -> torch.device:
    """The torch device for ``--device name``; ``InputError`` (one line) for an unknown name or for
    ``cuda`` where torch sees no CUDA device."""
    if name not in DEVICES:
        raise InputError(f"--device must be {' | '.join(DEVICES)}, not '{name}'")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False); use --device cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def on_cuda(device: torch.device | str | None) -> bool:
    """Whether ``device`` (a torch.device, a string like ``cuda:0``, or None for the CPU) is a CUDA device."""
    return device is not None and str(device).startswith("cuda")


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (cpu for a module without any)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def upload(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` (a CPU tensor, any shape) on ``device``: on CUDA through pinned memory without blocking
    the host (the copy overlaps with the work queued before it); on the CPU ``x`` itself."""
    if device.type != "cuda" or x.device == device:
        return x
    return x.pin_memory().to(device, non_blocking=True)


def host(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Device tensors -> numpy arrays (same shapes and dtypes) on the host; a CPU tensor shares its memory."""
    return tuple(t.detach().cpu().numpy() for t in tensors)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously: stage timers must wait to be true); no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
