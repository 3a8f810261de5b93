"""Atomic file writing: every file is written to a temporary name in the same folder, then renamed,
so an interrupted run never leaves a half-written output. What the files hold is ``lrpose.results``'s
(run outputs) and ``lrpose.models.checkpoint``'s (networks) business.

Output faults (read-only file system, a file where a folder should be, a full disk) become one
``InputError`` line naming the path and the problem (``output_error``); the temporary file is
removed. ``FolderLock`` keeps two runs out of one results folder."""

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


def output_error(path: Path, error: OSError) -> InputError:
    """The one-line error for an output ``path`` that cannot be written."""
    return InputError(f"cannot write {path}: {error.strerror or error}")


def make_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents); InputError naming the culprit when a file stands in the way
    or the file system refuses (read-only, no permission, full)."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(f"cannot write to {folder}: {parent} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(folder, e) from None
    return folder


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to the open file ``fd`` (unbuffered: a full disk raises here)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``); InputError on output faults."""
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from None
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, e) from None
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


LOCK_NAME = ".lrpose.lock"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """``with FolderLock(folder):`` one run at a time in ``folder``: ``<folder>/.lrpose.lock`` holds
    the owner's PID; a second run gets an InputError; a lock left by a dead process is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = make_folder(folder) / LOCK_NAME

    def acquire(self) -> None:
        """Take the lock: the file appears with the PID already in it (written to a temp file, then
        hard-linked into place), so no other run ever reads an empty lock; an unreadable or empty lock
        younger than 10 s is treated as held (its creator may be another kind of writer)."""
        tmp = self.path.with_name(f".lrpose.lock.{os.getpid()}.tmp")
        try:
            tmp.write_text(str(os.getpid()))
        except OSError as e:
            raise output_error(tmp, e) from None
        try:
            for _ in range(2):
                try:
                    os.link(tmp, self.path)
                    return
                except FileExistsError:
                    self._refuse_or_clear()
                except OSError as e:
                    raise output_error(self.path, e) from None
            raise InputError(f"could not take the lock {self.path}")
        finally:
            tmp.unlink(missing_ok=True)

    def _refuse_or_clear(self) -> None:
        """An existing lock: InputError while its process lives (or it is too fresh to judge), else removed."""
        import time

        try:
            pid = int(self.path.read_text().strip() or 0)
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            pid, age = 0, 0.0
        if (pid and pid != os.getpid() and _alive(pid)) or (not pid and age < 10.0):
            who = f"process {pid}" if pid else "a run starting now"
            raise InputError(f"{self.path.parent} is in use by another lrpose run ({who}); wait for it or use another --out") from None
        self.path.unlink(missing_ok=True)  # stale: its process is gone

    def release(self) -> None:
        try:
            if self.path.read_text().strip() == str(os.getpid()):
                self.path.unlink()
        except OSError:
            pass

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
