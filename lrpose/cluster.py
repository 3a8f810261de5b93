"""``lrpose video --ray``: one task per video on a Ray cluster (the only module importing ``ray``).

Each task runs the same setup and loop as the plain command (``cli_video.video_runner``, built once per
worker process and reused for its next videos) into the video's own results folder, so per-video
resume, the files and the summaries are exactly those of ``lrpose video``. A video that fails with
a bad input is reported on one line and the others go on; a task whose worker dies is retried once
(``max_retries``), then reported. The driver shows one progress bar over all videos and writes
``<out>/videos.json``, the summary of the whole run (one entry per video).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lrpose.errors import InputError, LrposeError

_RUNNERS: dict[str, tuple] = {}
"""Per worker process: the built ``(run, body)`` for each option set (models load once per worker)."""


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None
    """Cluster to join (``auto``, ``ray://host:port``); None starts a local one."""
    workers: int = 2
    """Local cluster only: videos processed at once."""
    task_cpus: int = 1
    """CPU cores reserved per task; its torch (and OpenCV) threads."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.task_cpus < 1:
            raise InputError(f"--workers and --task-cpus must be at least 1, got {self.workers} and {self.task_cpus}")


def _task(params: dict, source: str, folder: str, task_cpus: int):  # noqa: ANN202 - (RunSummary | None, error | None)
    """A Ray task: one video into ``folder`` with the options ``params``; never raises for bad input."""
    from lrpose import cli_video
    from lrpose.threads import set_threads

    set_threads(task_cpus)  # the task's reserved cores, for torch and OpenCV alike
    key = repr(sorted(params.items()))
    try:
        if key not in _RUNNERS:
            _RUNNERS[key] = cli_video.video_runner(params)
        run, _ = _RUNNERS[key]
        return run(Path(source), Path(folder)), None
    except LrposeError as e:
        return None, str(e)


def _connect(settings: RaySettings):  # noqa: ANN202 - the ray module
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install -e '.[ray]' (with -c constraints-cpu.txt)") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user cluster; no token file in ~/.ray
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if settings.address is None:
            ray.init(num_cpus=settings.workers * settings.task_cpus, **kwargs)
        else:
            ray.init(address=settings.address, **kwargs)
    except Exception as e:  # ConnectionError, ValueError, RuntimeError ... from ray.init
        where = settings.address or "a local instance"
        raise InputError(f"cannot start or reach the Ray cluster at {where}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    return ray


def run_on_ray(items: list[Path], out: Path, resume: bool, params: dict, settings: RaySettings) -> list:
    """Every video in ``items`` as a Ray task; rows for ``cli_report.summary_table`` in the order of ``items``."""
    from lrpose.cli import console, err_console, progress_bar
    from lrpose.files import save_json
    from lrpose.results import read_summary
    from lrpose.video import is_finished, output_names

    out = out.resolve()  # workers (maybe on other machines) do not share this process's working folder
    params = {k: v.resolve() if isinstance(v, Path) else v for k, v in params.items()}
    items = [s.resolve() for s in items]
    todo, rows, earlier = [], {}, []
    for src, name in zip(items, output_names(items), strict=True):
        if resume and is_finished(out / name, src):
            console.print(f"{src}: already done in {out / name} (--resume)", soft_wrap=True)
            earlier.append(_entry(read_summary(out / name), str(out / name)))
        else:
            todo.append((src, out / name))
    if not todo:
        return []
    ray = _connect(settings)
    try:
        remote = ray.remote(num_cpus=settings.task_cpus, max_retries=1)(_task)
        pending = {remote.remote(params, str(s), str(f), settings.task_cpus): (s, f) for s, f in todo}
        frames = 0
        with progress_bar() as bar:
            task = bar.add_task("videos", total=len(todo), info="")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                src, folder = pending.pop(ready[0])
                try:
                    summary, error = ray.get(ready[0])
                except Exception as e:  # the worker died twice, or lrpose crashed: reported, the others go on
                    summary, error = None, f"{src}: the Ray task failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                if error is not None:
                    err_console.print(f"error: {error}", style="red", soft_wrap=True)
                    rows[src] = (str(src), error)
                else:
                    frames += summary.frames
                    rows[src] = (summary, str(folder))
                    if summary.error:
                        err_console.print(f"error: {summary.error}", style="red", soft_wrap=True)
                bar.update(task, advance=1, info=f"{frames} frames")
    finally:
        ray.shutdown()
    ordered = [rows[s] for s, _ in todo]
    for result, _ in ordered:
        for line in [] if isinstance(result, str) else result.warnings:
            err_console.print(f"warning: {Path(result.source).name}: {line}", soft_wrap=True)
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "videos.json", {"videos": earlier + [_entry(r, w) for r, w in ordered]})
    return ordered


def _entry(result, where: str) -> dict:  # noqa: ANN001
    """One video in ``videos.json``."""
    if isinstance(result, str):
        return {"source": result, "error": where}
    return {"source": result.source, "folder": where, "frames": result.frames, "kept_tracks": result.kept_tracks,
            "frames_per_second": result.frames_per_second, "error": result.error}  # fmt: skip
