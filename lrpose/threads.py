"""How many CPU threads lrpose computes with (``--threads``; 0 = choose).

torch's default (one intra-op thread per core) collapses on a shared machine: when another process
keeps a core busy, torch's threads wait on each other at every operator (measured on 2 cores: the
YOLO pass took 4.97 s per frame with 2 threads and 0.29 s with 1 while another process ran). So
the default is the number of cores this process may use (``os.sched_getaffinity``) minus the
cores other work keeps busy (the larger of the 1-minute load average and a 0.1 s sample of
``/proc/stat``), rounded, at least 1: a busy machine gets one thread. OpenCV gets the
same count (it runs between torch's operators, never alongside), and OpenMP threads sleep instead of
spinning when idle (``OMP_WAIT_POLICY=PASSIVE``, set before torch is imported).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when the OpenMP runtime starts (torch import)

MAX_AUTO_THREADS = 8
"""The automatic choice never exceeds this (more threads do not speed up batch-1 CPU inference)."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat`` (None where there is none)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(seconds: float = 0.1) -> float:
    """Cores kept busy by other processes right now: ``/proc/stat`` sampled over ``seconds`` while
    this process sleeps (0.0 where unavailable)."""
    import time

    before = _cpu_times()
    if before is None:
        return 0.0
    time.sleep(seconds)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return 0.0
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def current_load() -> float:
    """How many cores other work keeps busy: the larger of the 1-minute load average (slow to see a
    new load) and ``busy_cores()`` (this instant); 0.0 where the platform tells neither."""
    try:
        average = max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        average = 0.0
    return max(average, busy_cores())


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """Threads to use: the cores not busy with other work (``cores - load``, rounded; a machine-wide load
    measured here is scaled to this process's share of the cores), 1 to
    ``MAX_AUTO_THREADS``; 1 on a loaded machine."""
    cores = usable_cores() if cores is None else cores
    if load is None:  # the load is machine-wide: count only this process's share of the machine's cores
        load = current_load() * cores / max(cores, os.cpu_count() or cores)
    return max(1, min(cores, MAX_AUTO_THREADS, int(cores - load + 0.5)))


def set_threads(requested: int = 0, workers: int = 1) -> int:
    """Apply ``--threads`` (0: ``auto_threads()`` shared among ``workers`` threads that compute at once,
    at least 1 each) to torch and OpenCV; returns the count used."""
    from lrpose.errors import InputError

    if requested < 0:
        raise InputError(f"--threads must be 0 (automatic) or a positive count, got {requested}")
    n = requested or max(1, auto_threads() // max(workers, 1))
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
