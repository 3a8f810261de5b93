"""Atomic file writing: every file is written to a temporary name in the same folder, then renamed,
so an interrupted run never leaves a half-written output. What the files hold is ``lrpose.results``'s
(run outputs) and ``lrpose.models.checkpoint``'s (networks) business."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lrpose.errors import InputError


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise InputError(f"cannot write to {path.parent}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Save arrays (no pickled objects) as an uncompressed ``.npz``, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def save_png(path: Path, rgb: np.ndarray, consume: bool = False) -> None:
    """Save an (H, W, 3) uint8 RGB image as PNG, atomically. ``consume``: the caller hands ``rgb``
    over and it is turned into BGR in place (no extra copy of a large image)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb if consume and rgb.flags.c_contiguous else None)
    ok, enc = cv2.imencode(".png", bgr)
    del bgr
    if not ok:
        raise InputError(f"could not encode {path} as PNG")
    atomic_write_bytes(path, memoryview(enc))


def atomic_torch_save(path: Path, payload: dict) -> None:
    """``torch.save`` a dict of plain tensors/numbers/strings atomically (for ``weights_only`` loading)."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    import json

    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def save_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """Write dict rows (the first row's keys as header) as CSV, atomically."""
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    atomic_write_bytes(path, buf.getvalue().encode())
