"""An iterator run ahead in a background thread (``ahead``): ``lrpose video`` decodes and detects
the next frames while the estimation of earlier ones runs, so two cores work at once even when
each stage computes on one thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order, produced by a daemon thread that keeps at most ``depth`` items ready.
    An exception in the producer is raised here, at its place in the sequence; closing this iterator
    (a consumer stopping early, an error downstream) stops the producer at its next item."""
    ready: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(ready, item, stop):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            _put(ready, _Failed(e), stop)
            return
        _put(ready, _END, stop)

    worker = threading.Thread(target=produce, name="lrpose-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5.0)


def _put(ready: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` when there is room; False when the consumer has gone."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
