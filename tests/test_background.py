"""``lrpose.background.ahead``: order, errors at their place, a consumer that stops early."""

from __future__ import annotations

import threading
import time

import pytest

from lrpose.background import ahead


def test_items_come_in_order_from_another_thread():
    seen = []

    def items():
        for i in range(50):
            seen.append(threading.current_thread().name)
            yield i

    assert list(ahead(items(), 3)) == list(range(50))
    assert set(seen) == {"lrpose-ahead"}


def test_an_error_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for x in ahead(items(), 8):
            got.append(x)
    assert got == [1, 2]


def test_closing_early_stops_the_producer():
    made = []

    def items():
        for i in range(10_000):
            made.append(i)
            yield i

    it = ahead(items(), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    time.sleep(0.3)
    count = len(made)
    time.sleep(0.3)
    assert len(made) == count and count <= 3 + 2 + 2  # stopped: what was read, what the queue held, one in hand
