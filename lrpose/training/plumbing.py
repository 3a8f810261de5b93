"""What every trainer (RSC-Net, temporal module, texture network) does around its training step.

A run folder holds ``last.pt`` (the resumable checkpoint), ``train_log.csv`` (one row per finished
step, steps counted from 1) and ``loss.png``. :class:`RunFolder` writes the log, saves every
``ckpt_every`` steps, saves on Ctrl-C (then re-raises) and at the end, and redraws the plot at
every save. A trainer supplies only ``save(path, step)``, which writes its checkpoint with
``lrpose.models.checkpoint.save(..., train_state=...)``; :func:`resume_state` reads that state back
and refuses a run whose settings changed. Under DDP only the main process (rank 0) writes files.

    run = RunFolder(out, ["step", "loss"], cfg.steps, cfg.ckpt_every, save, start, progress)
    with run:  # Ctrl-C: save the last finished step, re-raise
        for step in range(start, cfg.steps):
            ...
            run.step_done(step + 1, {"step": step + 1, "loss": loss.item()}, parts)
    return run.finish()
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from lrpose.errors import InputError
from lrpose.files import atomic_write_bytes
from lrpose.models.checkpoint import load_train_state

Progress = Callable[[int, int, dict], None]
"""``progress(finished_steps, total_steps, loss_parts)``, called after every step."""


def config_json(cfg: Any) -> str:
    """A trainer config dataclass as the JSON string stored in ``train_state["config"]``."""
    return json.dumps(asdict(cfg))


RUN_FILES = ("last.pt", "train_log.csv", "loss.png", "train_summary.json", "eval.json")
"""The files a training run writes into its folder (``--overwrite`` removes exactly these)."""
CACHE_PREFIX = "features_"
"""Cached inputs a run folder may hold before its run (the temporal trainer's ``features_*.npz``)."""


def claim_run_folder(out: Path, resume: Path | None, overwrite: bool) -> None:
    """Check ``out`` may receive a training run: a fresh run (no ``resume``) refuses a folder that
    holds anything but cached features unless ``overwrite``, which removes an earlier run's files
    (``RUN_FILES``; other files are left alone). InputError (one line) when refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    if resume is not None:
        if overwrite:
            raise InputError("give either --resume (continue the run) or --overwrite (start again), not both")
        return
    present = sorted(p.name for p in out.iterdir() if not p.name.startswith(CACHE_PREFIX)) if out.is_dir() else []
    if present and not overwrite:
        shown = ", ".join(present[:4]) + (" ..." if len(present) > 4 else "")
        raise InputError(
            f"--out {out} is not empty ({shown}); continue its run with --resume {out / 'last.pt'}, "
            "start again with --overwrite, or choose another folder"
        )
    for name in RUN_FILES if overwrite else ():
        (out / name).unlink(missing_ok=True)


def resume_state(resume: Path, cfg: Any) -> dict[str, Any]:
    """The training state of run checkpoint ``resume``; InputError naming the differing settings
    when it was trained with another config than ``cfg`` (a dataclass), and saying so when the
    output folder is the only difference (a copied or moved run folder)."""
    state = load_train_state(Path(resume))
    defaults = {f.name: f.default for f in fields(cfg) if f.default is not MISSING}  # options added after the run was written
    stored = {**json.loads(json.dumps(defaults)), **json.loads(state.get("config", "{}"))}
    current = json.loads(config_json(cfg))
    if stored != current:
        keys = [k for k in sorted(stored.keys() | current.keys()) if stored.get(k) != current.get(k)]
        if keys == ["out"]:
            raise InputError(
                f"{resume} was written by a run with --out {stored['out']}, this one has --out {current['out']}: the output "
                f"folder is the only difference (a copied or moved run folder?); resume with --out {stored['out']}"
            )
        diff = [f"{k} {stored.get(k, '(unset)')} -> {current.get(k, '(unset)')}" for k in keys]
        raise InputError(f"{resume} was trained with different settings ({'; '.join(diff)}); resume with the same options")
    return state


def _format(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


class RunFolder:
    """Log, periodic/interrupt/final saves and loss plot of one training run (a context manager).

    ``fields``: the CSV columns (the first is ``step``). ``save(path, step)`` writes the run
    checkpoint after ``step`` finished steps. ``start``: the step resumed from (0: a fresh run,
    whose log is started anew; else log rows after ``start`` are dropped, so no step repeats).
    ``main``: False on DDP ranks other than 0 (they write nothing).
    """

    def __init__(
        self,
        out: Path,
        fields: Sequence[str],
        steps: int,
        ckpt_every: int,
        save: Callable[[Path, int], None],
        start: int = 0,
        progress: Progress | None = None,
        main: bool = True,
    ) -> None:
        self.out, self.fields, self.steps, self.ckpt_every = Path(out), list(fields), steps, ckpt_every
        self.save, self.start, self.done, self.progress, self.main = save, start, start, progress, main
        self.checkpoint, self.log_path = self.out / "last.pt", self.out / "train_log.csv"
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_log(self._kept_rows())

    def _kept_rows(self) -> list[dict[str, str]]:
        if self.start == 0 or not self.log_path.exists():
            return []
        with self.log_path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= self.start]

    def _write_log(self, rows: list[dict[str, str]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fields, restval="", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.log_path, buf.getvalue().encode())

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> bool:
        if kind is not None and issubclass(kind, KeyboardInterrupt) and self.done > self.start:
            self._save(self.done)  # resumable from the last finished step
        return False  # re-raise

    def step_done(self, done: int, row: Mapping[str, object], parts: dict) -> None:
        """Step ``done`` (counted from 1) finished: append ``row`` to the log (floats as %.6g), save
        every ``ckpt_every`` steps (not at the last: :meth:`finish` does), report ``parts`` to progress."""
        self.done = done
        if self.main:
            with self.log_path.open("a", newline="") as f:
                csv.DictWriter(f, self.fields, lineterminator="\n").writerow({k: _format(v) for k, v in row.items()})
            if done % self.ckpt_every == 0 and done < self.steps:
                self._save(done)
        if self.progress is not None:
            self.progress(done, self.steps, parts)

    def finish(self) -> Path:
        """The final save (step = ``steps``) and plot; returns the checkpoint path ``out/last.pt``."""
        self._save(self.steps)
        return self.checkpoint

    def _save(self, step: int) -> None:
        if self.main:
            self.save(self.checkpoint, step)
            plot_loss(self.log_path, self.out / "loss.png")


def plot_loss(log_path: Path, out_png: Path) -> None:
    """Loss curve PNG (640 x 360, log10 scale) from a CSV log with ``step`` and ``loss`` columns."""
    with log_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        return
    steps = np.array([float(r["step"]) for r in rows])
    loss = np.log10(np.maximum([float(r["loss"]) for r in rows], 1e-9))
    w, h, m = 640, 360, 40
    img = np.full((h, w, 3), 255, np.uint8)
    x = m + (steps - steps.min()) / max(np.ptp(steps), 1) * (w - 2 * m)
    y = h - m - (loss - loss.min()) / max(np.ptp(loss), 1e-9) * (h - 2 * m)
    cv2.polylines(img, [np.stack([x, y], 1).astype(np.int32)], False, (200, 60, 20), 2)
    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    cv2.putText(img, f"log10 loss {loss.max():.2f} .. {loss.min():.2f}, steps {int(steps.min())}..{int(steps.max())}", (m, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)  # fmt: skip
    ok, enc = cv2.imencode(".png", img)
    if ok:
        atomic_write_bytes(out_png, enc.tobytes())
