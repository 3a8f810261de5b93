"""Writing results: every file is written to a temporary name in the same folder, then renamed,
so an interrupted run never leaves a half-written output."""

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


def atomic_write_bytes(path: Path, data: bytes) -> None:
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


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Save an (H, W, 3) uint8 RGB image as PNG, atomically."""
    ok, enc = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"could not encode {path} as PNG")
    atomic_write_bytes(path, enc.tobytes())


def save_obj(
    path: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray | None = None,
    uv_faces: np.ndarray | None = None,
    texture: np.ndarray | None = None,
) -> list[Path]:
    """Write a mesh as OBJ (+ MTL + PNG texture when ``uv``/``uv_faces``/``texture`` are given).

    vertices (V, 3) metres, faces (F, 3) 0-based; uv (T, 2) in [0, 1] with v up, uv_faces (F, 3);
    texture (H, W, 3) uint8 RGB. Faces are written ``f v/vt`` so the body's vertex order is kept;
    the material's Kd is white so viewers show the texture unmodified. Returns the files written.
    """
    path = Path(path)
    lines = [f"# lrpose mesh: {len(vertices)} vertices, {len(faces)} faces"]
    files = [path]
    textured = uv is not None and uv_faces is not None and texture is not None
    if textured:
        mtl, png = path.with_suffix(".mtl"), path.with_name(path.stem + "_texture.png")
        lines.append(f"mtllib {mtl.name}")
        lines.append("usemtl body")
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64)]
    if textured:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(uv, np.float64)]
        lines += [f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}" for (a, b, c), (ta, tb, tc) in zip(faces, uv_faces, strict=True)]
    else:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    if textured:
        material = f"newmtl body\nKa 1.000 1.000 1.000\nKd 1.000 1.000 1.000\nKs 0.000 0.000 0.000\nd 1.0\nillum 1\nmap_Kd {png.name}\n"
        save_png(png, texture)
        atomic_write_bytes(mtl, material.encode())
        files += [mtl, png]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return files


def atomic_torch_save(path: Path, payload: dict) -> None:
    """``torch.save`` a dict of plain tensors/numbers/strings atomically (for ``weights_only`` loading)."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
