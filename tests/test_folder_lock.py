"""One run at a time per results folder: the lock file, its stale and half-made cases."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lrpose.errors import InputError
from lrpose.files import LOCK_NAME, FolderLock


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_live_owner_refuses_a_dead_one_is_taken_over_and_release_removes_it(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(str(os.getppid()))  # a live process (our parent)
    with pytest.raises(InputError, match="in use by another lrpose run"):
        FolderLock(tmp_path).acquire()
    lock.write_text(str(dead_pid()))
    with FolderLock(tmp_path):
        assert lock.read_text() == str(os.getpid())
        assert not list(tmp_path.glob(".lrpose.lock.*.tmp"))
    assert not lock.exists()


def test_an_empty_lock_is_held_while_fresh_and_stale_when_old(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text("")  # another run between creating the file and writing its PID
    with pytest.raises(InputError, match="a run starting now"):
        FolderLock(tmp_path).acquire()
    os.utime(lock, (lock.stat().st_atime - 60, lock.stat().st_mtime - 60))
    with FolderLock(tmp_path):
        assert lock.read_text() == str(os.getpid())
