"""The ``lrpose`` command line (Typer): doctor, video, image here; train, eval and synth in
``lrpose.cli_train``. Each command parses its options, builds the configs (which check
themselves), makes one library call and prints.

Library errors (``LrposeError``) become one red line and exit code 1; ``--debug`` shows the
traceback; usage errors exit with code 2.
"""

from __future__ import annotations

import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lrpose import __version__
from lrpose.errors import LrposeError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay on one line

app = typer.Typer(
    name="lrpose",
    help="3D human pose, shape and texture (SMPL) of people 24-224 px tall in images and videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
train_app = typer.Typer(help="Train the models (RSC-Net, temporal module, texture network).", no_args_is_help=True)
app.add_typer(train_app, name="train")

SmplOpt = Annotated[Path | None, typer.Option("--smpl", help="SMPL file or folder (else $LRPOSE_SMPL_DIR, ./weights/smpl, stand-in).")]
GenderOpt = Annotated[str | None, typer.Option("--gender", help="neutral | male | female (real SMPL only).")]
BoxScaleOpt = Annotated[
    float,
    typer.Option(
        "--box-scale",
        help="Crop side / the person box's longer side (1.2 pads tight boxes like SPIN; 1.0 uses boxes as they are, "
        "like the official demos with a bbox file).",
    ),
]
StandinOpt = Annotated[bool | None, typer.Option("--standin/--no-standin", help="Force the shipped stand-in body.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (flags override it).")]
RefineOpt = Annotated[bool, typer.Option("--refine/--no-refine", help="Fit the bodies to the detector's keypoints when it gives them.")]
RefineItersOpt = Annotated[int, typer.Option("--refine-iters", help="Levenberg-Marquardt iterations of the keypoint fit.")]
REFINE_MIN_HEIGHT = 40.0
"""``RefineConfig.min_height`` (a test checks they agree; the CLI does not import torch to parse options)."""
RefineMinHeightOpt = Annotated[
    float,
    typer.Option("--refine-min-height", help="Fit only people whose box is at least this tall (px); smaller keep the network's body."),
]


_state: dict[str, object] = {"debug": False, "interrupted": "interrupted"}
"""Process-wide CLI state: ``--debug`` (root callback) and the line printed on Ctrl-C (``on_interrupt``)."""


def on_interrupt(line: str) -> None:
    """What to print if the running command is interrupted (Ctrl-C): what was kept, how to go on."""
    _state["interrupted"] = line


def _was_interrupted(error: BaseException | None) -> bool:
    """Whether an exit came from Ctrl-C: Typer turns KeyboardInterrupt into ``Exit(130)`` (chained) before ``main`` sees it."""
    for _ in range(8):  # KeyboardInterrupt -> typer Exit -> SystemExit, a short chain
        if error is None or isinstance(error, KeyboardInterrupt):
            return error is not None
        error = error.__cause__ or error.__context__
    return False


def _version(value: bool) -> None:
    if value:
        console.print(f"lrpose {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """lrpose command line."""
    _state["debug"] = debug


def _body_config(config: Path | None, smpl: Path | None, gender: str | None, standin: bool | None):
    from lrpose.config import load_config

    return load_config(config, body={"smpl": smpl, "gender": gender, "standin": standin}).body


@app.command()
def doctor(smpl: SmplOpt = None, gender: GenderOpt = None, standin: StandinOpt = None, config: ConfigOpt = None) -> None:
    """Show every asset (found where, or searched where) and check the body model poses correctly."""
    from lrpose.body import load_body
    from lrpose.doctor import asset_rows, body_check, environment

    cfg = _body_config(config, smpl, gender, standin)
    console.print(" | ".join(f"{k} {v}" for k, v in environment().items()))
    rows = asset_rows(cfg)
    table = Table(title="lrpose assets", show_lines=True)
    for col in ("asset", "status", "where", "what you can do"):
        table.add_column(col, overflow="fold")
    style = {"found": "green", "optional": "yellow", "missing": "red"}
    for r in rows:
        table.add_row(r.title, Text(r.status, style=style[r.status]), Text(r.where), Text(r.remedy))
    console.print(table)
    check = body_check(load_body(cfg))  # raises (one red line, exit 1) when no body can be used
    symmetric = check.symmetry_mm < 10.0
    console.print(
        Text(
            f"body in use: {check.body_id} | {check.num_vertices} vertices | height {check.height_m:.2f} m | "
            f"T-pose left/right joint mismatch {check.symmetry_mm:.2f} mm: "
            + ("ok" if symmetric else "WARNING: not symmetric, check the body file"),
            style="green" if symmetric else "bold yellow",
        )
    )
    if check.body_id.startswith("standin"):
        console.print(Text("note: using the free stand-in body (SMPL pose transfers, SMPL betas do not); see weights/README.md"))


def progress_bar(rate: str | None = None):
    """The progress bar of long commands: description, bar, n/total, [speed,] a free-text field, times."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Speed(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} {rate}" if task.speed else f"- {rate}")

    columns = ["[progress.description]{task.description}", BarColumn(), MofNCompleteColumn()]
    if rate:
        columns.append(Speed())
    return Progress(*columns, TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def note(text: str, style: str = "yellow") -> None:
    """One line on stderr (notes and warnings)."""
    err_console.print(Text(text, style=style), soft_wrap=True)


def load_body_for(config: Path | None, smpl: Path | None, gender: str | None = None, standin: bool | None = None):
    """The body model from flags and config file."""
    from lrpose.body import load_body

    return load_body(_body_config(config, smpl, gender, standin))


def _warn_untrained() -> None:
    from rich.panel import Panel

    text = (
        "No trained RSC-Net checkpoint was found, so lrpose is running an UNTRAINED network with random weights: "
        "the pose and shape below are meaningless. Train one with 'lrpose train rscnet', or pass --weights "
        "(lrpose, official RSC-Net.pt or SPIN model_checkpoint.pt). The output records untrained=true."
    )
    err_console.print(Panel(Text(text), title="WARNING: untrained model", style="bold yellow"), soft_wrap=False)


def _networks(body, weights: Path | None, texture: bool, texture_weights: Path | None):
    """(RSC-Net, its NetInfo, texture network or None, its id or None); warns loudly about untrained ones."""
    from lrpose.body import body_kind
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import find_rscnet, find_texture

    if texture and body.uv is None:
        raise InputError("--texture needs a body model with a UV layout (the stand-in has one; SMPL's .pkl has none)")
    model, info = find_rscnet(weights, body)
    if not info.trained:
        _warn_untrained()
    elif info.body_id is not None and body_kind(info.body_id) != body.name:
        note(f"note: the checkpoint was trained with the {body_kind(info.body_id)} body and you are using {body.body_id}: "
             "pose transfers, betas do not.")  # fmt: skip
    if not texture:
        return model, info, None, None
    net, tex = find_texture(texture_weights)
    if not tex.trained:
        note("WARNING: no trained texture network found: the texture comes from an UNTRAINED network (meaningless). "
             "Train one with 'lrpose train texture' or pass --texture-weights.", "bold yellow")  # fmt: skip
    return model, info, net, tex.checkpoint_id


def _refiner(body, refine: bool, iters: int, min_height: float):
    """The keypoint fit, or None with ``--no-refine``."""
    from lrpose.refine import RefineConfig, Refiner

    return Refiner(body, RefineConfig(iters=iters, min_height=min_height)) if refine else None


def _summary_table(rows: list) -> Table:
    """One row per source: a ``(RunSummary, folder)`` pair, or ``(source, error)`` for one that failed."""
    table = Table(title="lrpose video")
    for col in ("source", "frames", "people", "persons per range 0-4", "fps", "slowest stages (s)", "result"):
        table.add_column(col, overflow="fold")
    for r, where in rows:
        if isinstance(r, str):
            table.add_row(r, "-", "-", "-", "-", "-", Text("failed: " + where, style="red"))
            continue
        stages = sorted(r.seconds_per_stage.items(), key=lambda kv: -kv[1])[:4]
        hist = " ".join(str(v) for v in r.person_frames_per_range.values())
        status = Text("error: " + r.error, style="red") if r.error else Text(where, style="green")
        table.add_row(
            r.source, str(r.frames), str(r.people), hist, f"{r.frames_per_second}", ", ".join(f"{k} {v:.1f}" for k, v in stages), status
        )
    return table


def _report(bar, task, done: int, total: int, text: str) -> None:
    bar.update(task, completed=done, total=total, info=text)


@app.command()
def video(
    sources: Annotated[list[Path], typer.Argument(help="Video files, folders of videos, image folders or images.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (one sub-folder per source).")] = Path("results"),
    detector: Annotated[str, typer.Option("--detector", help="auto (yolo when its weights are found, else hog) | yolo | hog.")] = "auto",
    detector_weights: Annotated[Path | None, typer.Option("--detector-weights", help="Ultralytics YOLO .pt file.")] = None,
    boxes: Annotated[Path | None, typer.Option("--boxes", help="JSON boxes per frame instead of a detector.")] = None,
    det_size: Annotated[int, typer.Option("--det-size", help="Detector input size (longer side, px); larger finds smaller people.")] = 1280,
    det_conf: Annotated[float | None, typer.Option("--det-conf", help="Detector score threshold (yolo 0.25, hog 0.3).")] = None,
    det_stride: Annotated[int, typer.Option("--det-stride", help="Detect every k-th frame; the tracker bridges the rest.")] = 1,
    min_track: Annotated[int, typer.Option("--min-track", help="Drop tracks with fewer detected frames.")] = 8,
    max_gap: Annotated[int, typer.Option("--max-gap", help="Bridge up to this many frames without a detection.")] = 10,
    batch_frames: Annotated[int, typer.Option("--batch-frames", help="Frames per RSC-Net batch.")] = 4,
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
    refine_iters: RefineItersOpt = 10,
    refine_min_height: RefineMinHeightOpt = REFINE_MIN_HEIGHT,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Detect, track and reconstruct every person in videos: tracks/<id>.npz per person, overlay.mp4, summary.json."""
    from lrpose.detect import make_detector
    from lrpose.models.checkpoint import find_temporal
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.results import RunInfo
    from lrpose.video import VideoOptions, expand_sources, process_video

    on_interrupt("interrupted: finished tracks kept, run again with --resume")
    pipe_cfg = PipelineConfig(det_stride=det_stride, max_gap=max_gap, batch_frames=batch_frames, box_scale=box_scale)
    options = VideoOptions(
        min_track=min_track, save_verts=save_verts, overlay=not no_overlay, render_backend=render, texture_stride=texture_stride
    )
    body = load_body_for(config, smpl, gender, standin)
    model, info, texture_net, texture_id = _networks(body, weights, texture, texture_weights)
    det, det_line = make_detector(detector, detector_weights, boxes, det_size, det_conf)
    temporal = find_temporal(temporal_weights, model, info, enabled=not no_temporal)
    if temporal.note:
        note("note: " + temporal.note)
    console.print(
        f"detector: {det_line} | temporal: {temporal.line} | RSC-Net: {info.checkpoint_id} | body: {body.body_id}", soft_wrap=True
    )
    pipeline = Pipeline(model, body, det, temporal.module, pipe_cfg, refiner=_refiner(body, refine, refine_iters, refine_min_height))
    run_info = RunInfo(body.body_id, info.checkpoint_id, not info.trained, det_line, temporal.line, texture_id)
    run = partial(process_video, pipeline=pipeline, body=body, info=run_info, options=options, texture_net=texture_net)
    rows = _run_sources(expand_sources(sources), out, resume, run)
    if rows:
        console.print(_summary_table(rows))
    if any(isinstance(r, str) or r.error for r, _ in rows):
        raise typer.Exit(1)


def _run_sources(items: list[Path], out: Path, resume: bool, run) -> list:
    """``run(source, folder, progress=...)`` for each source (skipping finished ones with ``resume``);
    one red line per failure, the others go on. Rows for ``_summary_table``."""
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
                summary = run(src, folder, progress=partial(_report, bar, task))
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


@app.command()
def image(
    path: Annotated[Path, typer.Argument(help="Image of one person (or a crop around them).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
    box: Annotated[
        str | None, typer.Option("--box", help="Person box x1,y1,x2,y2 in pixels; default: the whole image is the crop.")
    ] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="RSC-Net checkpoint (lrpose, official RSC-Net.pt or SPIN).")] = None,
    save_verts: Annotated[bool, typer.Option("--save-verts", help="Also store the mesh vertices in the .npz.")] = False,
    texture: Annotated[
        bool, typer.Option("--texture", help="Also estimate the texture: textured OBJ + MTL + PNG and a 3-view PNG.")
    ] = False,
    texture_weights: Annotated[Path | None, typer.Option("--texture-weights", help="Texture network checkpoint.")] = None,
    detector: Annotated[
        str | None,
        typer.Option("--detector", help="Find the person (the largest) and keypoints with a detector: auto | yolo | hog."),
    ] = None,
    box_scale: BoxScaleOpt = 1.2,
    refine: RefineOpt = True,
    refine_iters: RefineItersOpt = 10,
    refine_min_height: RefineMinHeightOpt = REFINE_MIN_HEIGHT,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reconstruct one person in an image: SMPL .npz and an overlay PNG."""
    from lrpose.crops import parse_box
    from lrpose.errors import InputError
    from lrpose.image import process_image
    from lrpose.io import read_image
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.results import RunInfo

    on_interrupt("interrupted: no partial files (each output appears whole or not at all); run again to finish")
    pipe_cfg = PipelineConfig(box_scale=box_scale)  # bad options fail before any file is read
    picture = read_image(path)
    person_box = parse_box(box, picture.shape[1], picture.shape[0])  # bad input fails before any network loads
    keypoints, det_line = None, "none"
    if detector is not None:
        from lrpose.detect import find_person, make_detector

        if person_box is not None:
            raise InputError("give either --box or --detector")
        det, det_line = make_detector(detector)
        person_box, keypoints = find_person(det, picture)
    body = load_body_for(config, smpl, gender, standin)
    model, info, texture_net, texture_id = _networks(body, weights, texture, texture_weights)
    run_info = RunInfo(body.body_id, info.checkpoint_id, not info.trained, det_line, texture=texture_id)
    pipeline = Pipeline(model, body, config=pipe_cfg, refiner=_refiner(body, refine, refine_iters, refine_min_height))
    result = process_image(picture, out / path.stem, pipeline, run_info, person_box, save_verts, texture_net, keypoints, consume=True)
    est = result.estimate
    if est.below_minimum:
        note(f"note: the person crop is {est.native_size} px, below the 24 px the model is trained for")
    if est.refined:
        console.print(f"fitted to the detector's keypoints: {est.kp_residual[0]:.1f} -> {est.kp_residual[1]:.1f} px", soft_wrap=True)
    console.print(
        f"{path}: person crop {est.native_size} px -> range {est.range_index} | body {body.body_id} | "
        f"checkpoint {info.checkpoint_id} -> {', '.join(str(f) for f in result.files)}",
        soft_wrap=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes (1 library error, 2 usage, 130 interrupted)."""
    args = sys.argv[1:] if argv is None else list(argv)
    _state.update(debug=False, interrupted="interrupted")
    try:
        app(args=args, prog_name="lrpose")  # standalone mode: usage errors exit 2 via SystemExit
    except SystemExit as e:
        if _was_interrupted(e):
            err_console.print(Text(str(_state["interrupted"]), style="yellow"))
            return 130
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        err_console.print(Text(str(_state["interrupted"]), style="yellow"))
        return 130
    except LrposeError as e:
        if _state["debug"]:
            traceback.print_exc()
        err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
        return 1
    return 0


from lrpose import cli_train  # noqa: E402, F401  (registers train, eval and synth on the same app)
