"""The ``lrpose`` command line (Typer): doctor, video, image here; train and synth in
``lrpose.cli_train``, eval in ``lrpose.cli_eval``. Each command parses its options, builds the configs (which check
themselves), makes one library call and prints.

Library errors (``LrposeError``) become one red line and exit code 1; ``--debug`` shows the
traceback; usage errors exit with code 2.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lrpose import __version__
from lrpose import threads as _threads  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)
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
ThreadsOpt = Annotated[
    int,
    typer.Option("--threads", help="CPU threads for torch and OpenCV; 0: the cores not busy with other work (1 on a loaded machine)."),
]
DetRuntimeOpt = Annotated[
    str,
    typer.Option("--det-runtime", help="YOLO inference runtime: auto (openvino when installed, else torch) | openvino | onnx | torch."),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Where the networks and the keypoint fit run: auto (cuda when available) | cpu | cuda.")
]
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
def doctor(
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="Also say how this RSC-Net checkpoint was made (adapted ones).")] = None,
) -> None:
    """Show every asset (found where, or searched where), where an adapted RSC-Net came from, and check the body model poses correctly."""
    from lrpose import assets
    from lrpose.body import load_body
    from lrpose.doctor import asset_rows, body_check, environment, provenance_lines

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
    for line in provenance_lines(weights if weights is not None else assets.locate("rscnet").path):
        console.print(line, soft_wrap=True, highlight=False)
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


@app.command()
def image(
    path: Annotated[Path, typer.Argument(help="Image of one person (or a crop around them).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
    box: Annotated[
        str | None,
        typer.Option(
            "--box",
            help="Person box x1,y1,x2,y2: left, top, right, bottom corners in pixels (not x,y,w,h); clipped to the image. "
            "Default: the whole image is the crop.",
        ),
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
    det_runtime: DetRuntimeOpt = "auto",
    box_scale: BoxScaleOpt = 1.2,
    refine: RefineOpt = True,
    refine_iters: RefineItersOpt = 10,
    refine_min_height: RefineMinHeightOpt = REFINE_MIN_HEIGHT,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reconstruct one person in an image: SMPL .npz and an overlay PNG."""
    from lrpose.crops import parse_box
    from lrpose.device import pick_device
    from lrpose.errors import InputError
    from lrpose.image import process_image
    from lrpose.io import read_image
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.results import RunInfo
    from lrpose.threads import set_threads

    set_threads(threads)
    on_interrupt("interrupted: no partial files (each output appears whole or not at all); run again to finish")
    pipe_cfg, dev = PipelineConfig(box_scale=box_scale), pick_device(device)  # bad options fail before any file is read
    picture = read_image(path)
    person_box = parse_box(box, picture.shape[1], picture.shape[0], note)  # bad input fails before any network loads
    keypoints, det_line = None, "none"
    if detector is not None:
        from lrpose.detect import find_person, make_detector

        if person_box is not None:
            raise InputError("give either --box or --detector")
        det, det_line = make_detector(detector, runtime=det_runtime, device=dev)
        if getattr(det, "runtime_warning", None):
            note(f"warning: {det.runtime_warning}")
        person_box, keypoints = find_person(det, picture)
    body = load_body_for(config, smpl, gender, standin)
    model, info, texture_net, texture_id = _networks(body, weights, texture, texture_weights)
    run_info = RunInfo(body.body_id, info.checkpoint_id, not info.trained, det_line, texture=texture_id)
    pipeline = Pipeline(model, body, config=pipe_cfg, refiner=_refiner(body, refine, refine_iters, refine_min_height), device=dev)
    result = process_image(picture, out / path.stem, pipeline, run_info, person_box, save_verts, texture_net, keypoints, consume=True)
    est = result.estimate
    if est.below_minimum:
        note(f"note: the person crop is {est.native_size} px, below the 24 px the model is trained for")
    if est.refined:
        console.print(f"fitted to the detector's keypoints: {est.kp_residual[0]:.1f} -> {est.kp_residual[1]:.1f} px", soft_wrap=True)
    console.print(
        f"{path}: person box {est.box_xyxy[3] - est.box_xyxy[1]:.0f} px tall, crop {est.native_size} px -> range {est.range_index} | "
        f"body {body.body_id} | "
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
    except OSError as e:  # a file system fault no library call turned into an LrposeError: still one line
        if _state["debug"]:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        err_console.print(Text.assemble(("error: ", "bold red"), f"{where}{e.strerror or e}"))
        return 1
    return 0


from lrpose import cli_adapt, cli_eval, cli_export, cli_train, cli_video  # noqa: E402, F401  (register video, export, adapt, train, eval and synth on the same app)
