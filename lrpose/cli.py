"""The ``lrpose`` command line (Typer). Thin: parse options, call the library, report.

Library errors (``LrposeError``) become one red line and exit code 1; ``--debug`` shows the
traceback. Commands whose implementation has not landed yet exit with code 2 and say so.
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
StandinOpt = Annotated[bool | None, typer.Option("--standin/--no-standin", help="Force the shipped stand-in body.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file (flags override it).")]


class NotImplementedYet(Exception):
    """A command whose implementation is planned but has not landed."""


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


def _planned(what: str) -> None:
    raise NotImplementedYet(what)


@app.command()
def video(
    sources: Annotated[list[Path], typer.Argument(help="Video files, image folders or images.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
) -> None:
    """Detect, track and reconstruct every person in videos (npz per track + overlay video)."""
    _planned("lrpose video: detection, tracking, per-track RSC-Net + GRU smoothing, .npz per person and an overlay video")


def _parse_box(text: str | None):
    import numpy as np

    from lrpose.errors import InputError

    if text is None:
        return None
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or not (vals[2] > vals[0] and vals[3] > vals[1]):
        raise InputError(f"--box must be x1,y1,x2,y2 with x2 > x1 and y2 > y1, got '{text}'")
    return np.array(vals)


def _warn_untrained(info) -> None:
    from rich.panel import Panel

    err_console.print(
        Panel(
            Text(
                "No trained RSC-Net checkpoint was found, so lrpose is running an UNTRAINED network with random weights: "
                "the pose and shape below are meaningless. Train one with 'lrpose train rscnet', or pass --weights "
                "(lrpose, official RSC-Net.pt or SPIN model_checkpoint.pt). The output records untrained=true.",
            ),
            title="WARNING: untrained model",
            style="bold yellow",
        ),
        soft_wrap=False,
    )


@app.command()
def image(
    path: Annotated[Path, typer.Argument(help="Image of one person (or a crop around them).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("results"),
    box: Annotated[
        str | None, typer.Option("--box", help="Person box x1,y1,x2,y2 in pixels; default: the whole image is the crop.")
    ] = None,
    weights: Annotated[Path | None, typer.Option("--weights", help="RSC-Net checkpoint (lrpose, official RSC-Net.pt or SPIN).")] = None,
    save_verts: Annotated[bool, typer.Option("--save-verts", help="Also store the mesh vertices in the .npz.")] = False,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reconstruct one person in an image: SMPL .npz and an overlay PNG."""
    import torch

    from lrpose.body import body_kind, load_body
    from lrpose.crops import validate_box
    from lrpose.estimate import Estimator, load_model, read_image
    from lrpose.export import save_npz, save_png
    from lrpose.render import render_overlay

    picture = read_image(path)
    person_box = _parse_box(box)
    if person_box is not None:
        validate_box(person_box, picture.shape[1], picture.shape[0])
    body = load_body(_body_config(config, smpl, gender, standin))
    model, info = load_model(weights, body)
    if not info.trained:
        _warn_untrained(info)
    if info.body_id is not None and body_kind(info.body_id) != body.name:
        err_console.print(
            Text(
                f"note: the checkpoint was trained with the {body_kind(info.body_id)} body and you are using {body.body_id}: "
                "pose transfers, betas do not.",
                style="yellow",
            ),
            soft_wrap=True,
        )
    est = Estimator(model, info, body).estimate(picture, person_box)
    if est.below_minimum:
        err_console.print(Text(f"note: the person crop is {est.square.side} px, below the 24 px the model is trained for", style="yellow"))
    arrays = {
        "pose": est.pose, "betas": est.betas, "rotmats": est.rotmats, "pred_cam": est.pred_cam, "trans": est.trans,
        "focal_px": est.focal_px, "joints3d": est.joints3d, "joints2d": est.joints2d, "bbox": est.square.box_xyxy(),
        "range_index": est.range_index, "native_size": est.square.side, "below_min_size": est.below_minimum,
        "body_model": body.body_id, "checkpoint": info.checkpoint_id, "untrained": not info.trained,
    }  # fmt: skip
    if save_verts:
        arrays["verts"] = est.vertices
    stem = Path(path).stem
    save_npz(out / f"{stem}.npz", arrays)
    faces = body.faces
    drawn = render_overlay(picture, torch.from_numpy(est.vertices)[None], faces, torch.from_numpy(est.trans)[None], est.focal_px)
    save_png(out / f"{stem}_overlay.png", drawn)
    console.print(
        f"{path}: person crop {est.square.side} px -> range {est.range_index} | body {body.body_id} | "
        f"checkpoint {info.checkpoint_id} -> {out / (stem + '.npz')}, {out / (stem + '_overlay.png')}",
        soft_wrap=True,
    )


@app.command("eval")
def evaluate() -> None:
    """MPJPE / PA-MPJPE / PVE / acceleration error at chosen resolutions."""
    _planned("lrpose eval: MPJPE, PA-MPJPE, PVE and accel error at 224/176/96/52/32 px")


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (rerunning resumes: finished files are kept).")],
    kind: Annotated[str, typer.Option("--kind", help="crops (SPIN-style 224 px crops) or video (CCTV-like clips).")] = "crops",
    n: Annotated[int, typer.Option("--n", help="Number of crops, or of clips.")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes.")] = 1,
    preview_sheet: Annotated[bool, typer.Option("--preview", help="Also write preview.png with 2D keypoints drawn.")] = False,
    poses: Annotated[Path | None, typer.Option("--poses", help=".npz with (N,72) axis-angle poses to sample from.")] = None,
    backgrounds: Annotated[Path | None, typer.Option("--backgrounds", help="Folder of background images.")] = None,
    crop_size: Annotated[int, typer.Option("--crop-size")] = 224,
    tex_size: Annotated[int, typer.Option("--tex-size", help="Side of the ground-truth UV texture maps.")] = 128,
    shard_size: Annotated[int, typer.Option("--shard-size", help="Crops per .npz shard.")] = 64,
    width: Annotated[int, typer.Option("--width")] = 640,
    height: Annotated[int, typer.Option("--height")] = 480,
    fps: Annotated[int, typer.Option("--fps")] = 15,
    seconds: Annotated[float, typer.Option("--seconds")] = 4.0,
    max_people: Annotated[int, typer.Option("--max-people")] = 6,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Generate synthetic people with full ground truth (crops or CCTV-like clips)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from lrpose.errors import InputError
    from lrpose.training.synth import SynthConfig, generate, preview

    for name, value in (("--n", n), ("--workers", workers), ("--crop-size", crop_size), ("--tex-size", tex_size),
                        ("--shard-size", shard_size), ("--fps", fps), ("--max-people", max_people)):  # fmt: skip
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if seconds <= 0:
        raise InputError(f"--seconds must be positive, got {seconds}")
    cfg = SynthConfig(
        kind=kind, n=n, seed=seed, crop_size=crop_size, tex_size=tex_size, shard_size=shard_size, workers=workers,
        poses=str(poses) if poses else None, backgrounds=str(backgrounds) if backgrounds else None,
        width=width, height=height, fps=fps, seconds=seconds, max_people=max_people,
    )  # fmt: skip
    body_cfg = _body_config(config, smpl, None, standin)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console) as bar:  # fmt: skip
        task = bar.add_task(f"synth {kind}", total=None)
        files = generate(cfg, body_cfg, out, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(files)} {'shards' if kind == 'crops' else 'clips'} to {out}", soft_wrap=True)
    if preview_sheet:
        console.print(f"preview: {preview(out, kind)}", soft_wrap=True)


@train_app.command("rscnet")
def train_rscnet() -> None:
    """Train RSC-Net (progressive multi-resolution, self-supervision, contrastive loss)."""
    _planned("lrpose train rscnet")


@train_app.command("temporal")
def train_temporal() -> None:
    """Train the GRU temporal module on extracted features."""
    _planned("lrpose train temporal")


@train_app.command("texture")
def train_texture() -> None:
    """Train the texture network."""
    _planned("lrpose train texture")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes (1 library error, 2 usage/not yet)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        app(args=args, prog_name="lrpose")  # standalone mode: usage errors exit 2 via SystemExit
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except NotImplementedYet as e:
        err_console.print(Text.assemble(("not implemented yet: ", "bold yellow"), str(e)))
        return 2
    except LrposeError as e:
        if "--debug" in args:
            traceback.print_exc()
        err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
        return 1
    return 0
