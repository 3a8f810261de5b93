"""``lrpose video`` (registered on the app of ``lrpose.cli``): options -> ``video_runner`` (the
set-up, shared with the Ray tasks of ``lrpose.cluster``) -> one run per source -> summary."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from lrpose.cli import (
    REFINE_MIN_HEIGHT,
    BoxScaleOpt,
    ConfigOpt,
    DetRuntimeOpt,
    DeviceOpt,
    GenderOpt,
    RefineMinHeightOpt,
    RefineOpt,
    SmplOpt,
    StandinOpt,
    ThreadsOpt,
    _networks,
    _refiner,
    app,
    console,
    err_console,
    load_body_for,
    note,
    on_interrupt,
    progress_bar,
)  # fmt: skip
from lrpose.errors import InputError, LrposeError


@app.command()
def video(
    sources: Annotated[list[Path], typer.Argument(help="Video files, folders of videos, image folders or images.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (one sub-folder per source).")] = Path("results"),
    detector: Annotated[str, typer.Option("--detector", help="auto (yolo when its weights are found, else hog) | yolo | hog.")] = "auto",
    detector_weights: Annotated[Path | None, typer.Option("--detector-weights", help="Ultralytics YOLO .pt file.")] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="JSON boxes per frame instead of a detector: x1,y1,x2,y2 corners in pixels (see README).")
    ] = None,
    det_size: Annotated[
        str,
        typer.Option("--det-size", help="Detector input (longer side, px; larger finds smaller people) or auto: YOLO sized to the people."),
    ] = "auto",
    det_conf: Annotated[float | None, typer.Option("--det-conf", help="Detector score threshold (yolo 0.25, hog 0.3).")] = None,
    det_stride: Annotated[
        str, typer.Option("--det-stride", help="Detect every k-th frame (the tracker bridges the rest) or auto: ~7.5 detections a second.")
    ] = "auto",
    det_runtime: DetRuntimeOpt = "auto",
    min_track: Annotated[int, typer.Option("--min-track", help="Drop tracks with fewer detected frames.")] = 8,
    max_gap: Annotated[int, typer.Option("--max-gap", help="Bridge up to this many frames without a detection.")] = 10,
    batch_frames: Annotated[
        int, typer.Option("--batch-frames", help="Frames per RSC-Net batch (fits between detector runs are interpolated within one).")
    ] = 8,
    box_scale: BoxScaleOpt = 1.2,
    weights: Annotated[Path | None, typer.Option("--weights", help="RSC-Net checkpoint (lrpose, official RSC-Net.pt or SPIN).")] = None,
    temporal_weights: Annotated[Path | None, typer.Option("--temporal-weights", help="Temporal module checkpoint.")] = None,
    no_temporal: Annotated[bool, typer.Option("--no-temporal", help="Per-frame results (no GRU smoothing).")] = False,
    save_verts: Annotated[bool, typer.Option("--save-verts", help="Also store mesh vertices in the track files.")] = False,
    no_overlay: Annotated[bool, typer.Option("--no-overlay", help="Do not render overlay.mp4.")] = False,
    render: Annotated[str, typer.Option("--render", help="Overlay renderer: auto | gl | torch.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Skip sources whose results are already complete.")] = False,
    texture: Annotated[
        bool, typer.Option("--texture", help="Also a textured OBJ per person (texture fused over the track's frames).")
    ] = False,
    texture_weights: Annotated[Path | None, typer.Option("--texture-weights", help="Texture network checkpoint.")] = None,
    texture_stride: Annotated[int, typer.Option("--texture-stride", help="Predict the texture on every k-th frame.")] = 5,
    refine: RefineOpt = True,
    refine_iters: Annotated[
        int | None, typer.Option("--refine-iters", help="Levenberg-Marquardt iterations of the keypoint fit (default 10; --fast 5).")
    ] = None,
    fast: Annotated[
        bool,
        typer.Option("--fast", help="Fastest settings: half the detections, a smaller detector input, 5 fit iterations (README: speed)."),
    ] = False,
    refine_min_height: RefineMinHeightOpt = REFINE_MIN_HEIGHT,
    export: Annotated[
        str | None, typer.Option("--export", help="Also write glb (animated glTF of every track) and/or bvh (one per track): glb,bvh.")
    ] = None,
    ray: Annotated[bool, typer.Option("--ray", help="One task per video on a Ray cluster (pip install -e '.[ray]').")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster to join (e.g. auto or ray://host:10001); default: a local one.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="With --ray and no address: videos processed at once.")] = 2,
    task_cpus: Annotated[int, typer.Option("--task-cpus", help="With --ray: CPU cores (torch threads) per video task.")] = 1,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Detect, track and reconstruct every person in videos: tracks/<id>.npz per person, overlay.mp4, summary.json."""
    params = {k: v for k, v in locals().items() if k not in ("sources", "out", "resume", "ray", "ray_address", "workers", "task_cpus")}
    from lrpose.cli_report import stage_lines, summary_table
    from lrpose.export_tracks import export_run, parse_formats
    from lrpose.threads import set_threads
    from lrpose.video import expand_sources

    on_interrupt("interrupted: finished tracks kept, run again with --resume")
    _video_configs(params)  # bad options fail here, before any video (or Ray) starts
    formats = parse_formats(export) if export is not None else ()
    items = expand_sources(sources)
    if ray:
        from lrpose.cluster import RaySettings, run_on_ray

        if threads:
            raise InputError("with --ray each task's threads are --task-cpus; leave --threads out")
        rows = run_on_ray(items, out, resume, params, RaySettings(ray_address, workers, task_cpus))
        body = load_body_for(config, smpl, gender, standin) if formats else None
    else:
        set_threads(threads, workers=2)  # decode + detect run in a thread beside the estimation (lrpose.background)
        run, body = video_runner(params)
        rows = _run_sources(items, out, resume, run)
    if rows:
        console.print(summary_table(rows))
        for line in stage_lines(rows):
            console.print(line, soft_wrap=True, highlight=False)
    failed = any(isinstance(r, str) or r.error for r, _ in rows)
    for summary, folder in rows if formats else []:
        if isinstance(summary, str) or summary.error or not summary.tracks:
            continue
        try:
            files = export_run(Path(folder), body, formats)
        except LrposeError as e:  # one line; the other videos are still exported
            err_console.print(Text.assemble(("error: ", "bold red"), f"export of {folder}: {e}"))
            failed = True
            continue
        more = f" and {len(files) - 2} more" if len(files) > 2 else ""
        console.print(f"exported {', '.join(str(f) for f in files[:2])}{more}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _video_configs(p: dict):  # noqa: ANN202 - (PipelineConfig, VideoOptions, torch.device)
    """The pipeline and video options and the device of ``lrpose video``'s option values (each checks itself)."""
    from lrpose.detect import parse_det_size
    from lrpose.device import pick_device
    from lrpose.pipeline import DETECTIONS_PER_SECOND, FAST_DETECTIONS_PER_SECOND, PipelineConfig
    from lrpose.video import VideoOptions
    from lrpose.yolo_runtime import choose

    parse_det_size(p["det_size"])
    choose(p["det_runtime"])
    per_second = FAST_DETECTIONS_PER_SECOND if p["fast"] else DETECTIONS_PER_SECOND
    pipe_cfg = PipelineConfig(
        det_stride=_stride(p["det_stride"]), detections_per_second=per_second, max_gap=p["max_gap"], batch_frames=p["batch_frames"],
        box_scale=p["box_scale"],
    )  # fmt: skip
    options = VideoOptions(
        min_track=p["min_track"], save_verts=p["save_verts"], overlay=not p["no_overlay"], render_backend=p["render"],
        texture_stride=p["texture_stride"],
    )  # fmt: skip
    return pipe_cfg, options, pick_device(p["device"])


FAST_REFINE_ITERS = 5
"""Keypoint-fit iterations with ``--fast`` (10 otherwise)."""


def _stride(text: str) -> int:
    """``--det-stride``: auto (0) or a stride of at least 1."""
    if text.strip().lower() == "auto":
        return 0
    try:
        stride = int(text)
    except ValueError:
        raise InputError(f"--det-stride must be auto or a whole number of frames, got '{text}'") from None
    if stride < 1:
        raise InputError(f"--det-stride must be at least 1, got {stride}")
    return stride


def video_runner(params: dict):  # noqa: ANN201 - (run, body)
    """Set up ``lrpose video`` from its option values (``params``: the command's keyword arguments
    except sources/out/resume/Ray settings): ``run(source, folder, progress=...) -> RunSummary`` and the body.
    Ray workers call it too (``lrpose.cluster``), once per process."""
    from lrpose.detect import make_detector
    from lrpose.models.temporal_choice import find_temporal
    from lrpose.pipeline import Pipeline
    from lrpose.results import RunInfo
    from lrpose.video import process_video

    p = params
    pipe_cfg, options, dev = _video_configs(p)
    body = load_body_for(p["config"], p["smpl"], p["gender"], p["standin"])
    model, info, texture_net, texture_id = _networks(body, p["weights"], p["texture"], p["texture_weights"])
    det, det_line = make_detector(
        p["detector"], p["detector_weights"], p["boxes"], p["det_size"], p["det_conf"], p["fast"], runtime=p["det_runtime"], device=dev
    )
    if getattr(det, "runtime_warning", None):
        note(f"warning: {det.runtime_warning}")
    temporal = find_temporal(p["temporal_weights"], model, info, enabled=not p["no_temporal"])
    if temporal.note:
        note("note: " + temporal.note)
    console.print(
        f"detector: {det_line} | temporal: {temporal.line} | RSC-Net: {info.checkpoint_id} | body: {body.body_id} | device: {dev}",
        soft_wrap=True,
    )
    iters = p["refine_iters"] if p["refine_iters"] is not None else (FAST_REFINE_ITERS if p["fast"] else 10)
    refiner = _refiner(body, p["refine"], iters, p["refine_min_height"])
    pipeline = Pipeline(model, body, det, temporal.module, pipe_cfg, refiner=refiner, device=dev)
    run_info = RunInfo(body.body_id, info.checkpoint_id, not info.trained, det_line, temporal.line, texture_id)
    return partial(process_video, pipeline=pipeline, body=body, info=run_info, options=options, texture_net=texture_net), body


def _run_sources(items: list[Path], out: Path, resume: bool, run) -> list:
    """``run(source, folder, progress=...)`` for each source (skipping finished ones with ``resume``);
    one red line per failure, the others go on. Rows for ``cli_report.summary_table``."""
    from lrpose.cli_report import SourceProgress
    from lrpose.video import is_finished, output_names

    rows = []
    with progress_bar("frames/s") as bar:
        for src, name in zip(items, output_names(items), strict=True):
            folder = out / name
            if resume and is_finished(folder, src):
                console.print(f"{src}: already done in {folder} (--resume)", soft_wrap=True)
                continue
            task = bar.add_task(str(src.name), total=None, info="")
            try:
                summary = run(src, folder, progress=SourceProgress(bar, task, src.name, console))
            except LrposeError as e:
                err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
                rows.append((str(src), str(e)))
                continue
            finally:
                bar.update(task, visible=False)
            for line in summary.warnings:
                note(f"warning: {src.name}: {line}")
            if summary.error:
                err_console.print(Text.assemble(("error: ", "bold red"), summary.error))
            rows.append((summary, str(folder)))
    return rows
