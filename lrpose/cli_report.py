"""What ``lrpose video`` prints about its sources: the summary table (readable at 80 columns), one
line per source after it, and the progress of each source (a bar on a terminal, plain lines in a log)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text


def summary_table(rows: list) -> Table:
    """One row per source: a ``(RunSummary, folder)`` pair, or ``(source, error)`` for one that failed.
    Five narrow columns (readable at 80 columns); the slowest stages follow the table (``stage_lines``)."""
    table = Table(title="lrpose video")
    for col in ("source", "frames", "tracks", "fps", "result"):
        table.add_column(col, overflow="fold", no_wrap=col in ("frames", "tracks", "fps"))
    for r, where in rows:
        if isinstance(r, str):
            table.add_row(Path(r).name, "-", "-", "-", Text("failed: " + where, style="red"))
            continue
        status = Text("error: " + r.error, style="red") if r.error else Text("done", style="green")
        table.add_row(Path(r.source).name, str(r.frames), str(r.kept_tracks), f"{r.frames_per_second}", status)
    return table


def stage_lines(rows: list) -> list[str]:
    """Per finished source: its results folder, person-frames per resolution range and the slowest stages (seconds)."""
    lines = []
    for r, where in rows:
        if isinstance(r, str):
            continue
        stages = sorted(r.seconds_per_stage.items(), key=lambda kv: -kv[1])[:4]
        hist = " ".join(str(v) for v in r.person_frames_per_range.values())
        lines.append(
            f"{Path(r.source).name} -> {where} | person-frames per range 0-4: {hist} | slowest (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in stages)
        )
    return lines


PROGRESS_EVERY_S = 30.0
"""Seconds between progress lines when stdout is not a terminal (a log file)."""


class SourceProgress:
    """Progress of one source: the live bar on a terminal; else one plain line every ``PROGRESS_EVERY_S``."""

    def __init__(self, bar, task, name: str, console: Console) -> None:  # noqa: ANN001  (a rich Progress and its task id)
        self.bar, self.task, self.name, self.console = bar, task, name, console
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int, total: int, text: str) -> None:
        self.bar.update(self.task, completed=done, total=total, info=text)
        now = time.monotonic()
        if not self.console.is_terminal and now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = done / (now - self.t0) if now > self.t0 else 0.0
            self.console.print(f"{self.name}: frame {done}/{total}, {rate:.2f} frames/s, {text}", soft_wrap=True, highlight=False)
