"""The ``lrpose`` command line (Typer). Thin: parse options, call the library, report.

Library errors (``LrposeError``) become one red line and exit code 1; ``--debug`` shows the
traceback; usage errors exit with code 2.
"""

from __future__ import annotations

import os
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


def _progress_bar(rate: str | None = None):
    """The progress bar of long commands: description, bar, n/total, [speed,] a free-text field, times."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Speed(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} {rate}" if task.speed else f"- {rate}")

    columns = ["[progress.description]{task.description}", BarColumn(), MofNCompleteColumn()]
    if rate:
        columns.append(Speed())
    return Progress(*columns, TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _temporal_module(no_temporal: bool, temporal_weights: Path | None, rscnet_id: str, feat_dim: int):
    """(temporal module or None, one line saying what runs)."""
    from lrpose import assets
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import load_temporal, same_weights

    if no_temporal:
        return None, "off (--no-temporal): per-frame results"
    path = assets.resolve("temporal", temporal_weights) if temporal_weights is not None else assets.locate("temporal").path
    if path is None:
        return None, "off (no temporal checkpoint found): per-frame results"
    module, tinfo = load_temporal(path)
    same = same_weights(tinfo.rscnet_id, rscnet_id) and module.config.feat_dim == feat_dim
    if not same:
        why = f"{path.name} was trained on the features of {tinfo.rscnet_id}, not of {rscnet_id}"
        if temporal_weights is not None:
            raise InputError(f"--temporal-weights: {why}; train one for this RSC-Net with 'lrpose train temporal'")
        err_console.print(Text(f"note: temporal module off: {why} (per-frame results)", style="yellow"), soft_wrap=True)
        return None, f"off ({why})"
    return module, f"GRU {tinfo.checkpoint_id}" + ("" if tinfo.trained else " (UNTRAINED)")


def _summary_table(rows: list[dict]) -> Table:
    table = Table(title="lrpose video")
    for col in ("source", "frames", "people", "persons per range 0-4", "fps", "slowest stages (s)", "result"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "failed" in r:
            table.add_row(r["source"], "-", "-", "-", "-", "-", Text("failed: " + r["failed"], style="red"))
            continue
        stages = sorted(r["seconds_per_stage"].items(), key=lambda kv: -kv[1])[:4]
        hist = " ".join(str(v) for v in r["person_frames_per_range"].values())
        status = Text("error: " + r["error"], style="red") if r.get("error") else Text(r["folder"], style="green")
        table.add_row(
            r["source"], str(r["frames"]), str(r["people"]), hist, f"{r['frames_per_second']}",
            ", ".join(f"{k} {v:.1f}" for k, v in stages), status,
        )  # fmt: skip
    return table


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
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Detect, track and reconstruct every person in videos: tracks/<id>.npz per person, overlay.mp4, summary.json."""

    from lrpose.detect import make_detector
    from lrpose.errors import InputError
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.video import RunInfo, VideoOptions, expand_sources, is_finished, output_names, process_video

    limits = (("--det-stride", det_stride, 1), ("--min-track", min_track, 1), ("--max-gap", max_gap, 0),
              ("--batch-frames", batch_frames, 1), ("--det-size", det_size, 32), ("--texture-stride", texture_stride, 1))  # fmt: skip
    for name, value, low in limits:
        if value < low:
            raise InputError(f"{name} must be at least {low}, got {value}")
    if max_gap < det_stride:
        raise InputError(f"--max-gap ({max_gap}) must be at least --det-stride ({det_stride}): one missed detection would end a track")
    if render not in ("auto", "gl", "torch"):
        raise InputError(f"--render must be auto, gl or torch, not '{render}'")
    items = expand_sources(sources)
    body, model, info = _body_and_model(config, smpl, gender, standin, weights, texture)
    texture_net = _texture_net(texture_weights) if texture else None
    det, det_line = make_detector(detector, detector_weights, boxes, det_size, det_conf)
    temporal, temporal_line = _temporal_module(no_temporal, temporal_weights, info.checkpoint_id, model.feature_dim)
    line = f"detector: {det_line} | temporal: {temporal_line} | RSC-Net: {info.checkpoint_id} | body: {body.body_id}"
    console.print(line, soft_wrap=True)
    pipeline = Pipeline(model, body, det, temporal, PipelineConfig(det_stride, max_gap, batch_frames))
    run_info = RunInfo(body.body_id, info.checkpoint_id, not info.trained, det_line, temporal_line)
    options = VideoOptions(min_track, save_verts, not no_overlay, render, texture_stride)
    rows, failed = [], 0
    with _progress_bar("frames/s") as bar:
        for src, name in zip(items, output_names(items), strict=True):
            folder = out / name
            if resume and is_finished(folder, src):
                console.print(f"{src}: already done in {folder} (--resume)", soft_wrap=True)
                continue
            task = bar.add_task(str(src.name), total=None, info="")

            def report(done: int, total: int, text: str, task=task) -> None:
                bar.update(task, completed=done, total=total, info=text)

            try:
                summary = process_video(src, folder, pipeline, body, run_info, options, report, texture_net)
            except LrposeError as e:
                failed += 1
                err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
                rows.append({"source": str(src), "failed": str(e)})
                continue
            finally:
                bar.update(task, visible=False)
            if summary["error"]:
                failed += 1
                err_console.print(Text.assemble(("error: ", "bold red"), summary["error"]))
            rows.append({**summary, "folder": str(folder)})
    if rows:
        console.print(_summary_table(rows))
    if failed:
        raise typer.Exit(1)


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


def _body_and_model(config, smpl, gender, standin, weights, texture: bool):
    """(body, RSC-Net, info) for the image and video commands; warns loudly when the network is untrained."""
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.estimate import load_model

    body = load_body(_body_config(config, smpl, gender, standin))
    if texture and body.uv is None:
        raise InputError("--texture needs a body model with a UV layout (the stand-in has one; SMPL's .pkl has none)")
    model, info = load_model(weights, body)
    if not info.trained:
        _warn_untrained(info)
    return body, model, info


def _texture_net(texture_weights: Path | None):
    """The texture network (``checkpoint_id`` attribute set); warns loudly when it is untrained."""
    from lrpose.textured import load_texture_net

    net, tex_id, trained = load_texture_net(texture_weights)
    if not trained:
        err_console.print(
            Text(
                "WARNING: no trained texture network found: the texture comes from an UNTRAINED network (meaningless). "
                "Train one with 'lrpose train texture' or pass --texture-weights.",
                style="bold yellow",
            ),
            soft_wrap=True,
        )
    net.checkpoint_id = tex_id
    return net


def _write_textured(body, picture, est, stem: Path, texture_weights: Path | None) -> None:
    """Predict the texture of the person in ``est`` and write OBJ/MTL/PNG and the 3-view PNG."""
    from lrpose.crops import cut_square
    from lrpose.files import save_obj, save_png
    from lrpose.textured import predict_texture, three_view, upright_vertices

    net = _texture_net(texture_weights)
    tex = predict_texture(net, cut_square(picture, est.square))
    faces = body.faces.numpy()
    save_obj(stem.with_suffix(".obj"), upright_vertices(est.vertices), faces, body.uv.numpy(), body.uv_faces.numpy(), tex)
    save_png(stem.with_name(stem.name + "_3view.png"), three_view(body, est.rotmats, est.betas, tex))
    console.print(f"texture ({net.checkpoint_id}): {stem}.obj, {stem}.mtl, {stem}_texture.png, {stem}_3view.png", soft_wrap=True)


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
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reconstruct one person in an image: SMPL .npz and an overlay PNG."""
    import torch

    from lrpose.body import body_kind
    from lrpose.crops import validate_box
    from lrpose.estimate import Estimator
    from lrpose.files import save_npz, save_png
    from lrpose.io import read_image
    from lrpose.render import render_overlay

    picture = read_image(path)
    person_box = _parse_box(box)
    if person_box is not None:
        validate_box(person_box, picture.shape[1], picture.shape[0])
    body, model, info = _body_and_model(config, smpl, gender, standin, weights, texture)
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
    if texture:
        _write_textured(body, picture, est, out / stem, texture_weights)
    console.print(
        f"{path}: person crop {est.square.side} px -> range {est.range_index} | body {body.body_id} | "
        f"checkpoint {info.checkpoint_id} -> {out / (stem + '.npz')}, {out / (stem + '_overlay.png')}",
        soft_wrap=True,
    )


def _data_set(data: Path, img_root: Path | None):
    from lrpose.errors import InputError
    from lrpose.training.data import SpinDataset, SyntheticCrops

    if data.is_dir():
        return SyntheticCrops(data)
    if data.suffix == ".npz" and data.is_file():
        if img_root is None:
            raise InputError(f"{data} is SPIN-format data: give its image folder with --img-root")
        return SpinDataset(data, img_root)
    raise InputError(f"--data {data} is neither a folder of synthetic crops nor a SPIN-format .npz")


def _eval_texture(data, weights, low_res, reid_weights, limit, json_out, smpl, standin, config) -> None:
    import json

    from lrpose import assets
    from lrpose.body import load_body
    from lrpose.files import atomic_write_bytes
    from lrpose.training.texture import ReIDFeatures, TextureCrops, evaluate_texture, load_texture_checkpoint

    dataset = TextureCrops(data)
    body = load_body(_body_config(config, smpl, None, standin))
    reid = ReIDFeatures(reid_weights) if reid_weights else None
    paths = list(weights) if weights else [assets.resolve("texture")]
    table = Table(title=f"texture metrics on {data} (person images {low_res} px; lower is better)")
    for col in ("checkpoint", "UV L1", "render L1", *(["ReID dist"] if reid else [])):
        table.add_column(col, overflow="fold")
    records = []
    for path in paths:
        net, _ = load_texture_checkpoint(path)
        r = evaluate_texture(net, body, dataset, low_res=low_res, limit=limit, reid=reid)
        records.append({"checkpoint": str(path), **r})
        table.add_row(str(path), f"{r['uv_l1']:.4f}", f"{r['image_l1']:.4f}", *([f"{r['reid_distance']:.4f}"] if reid else []))
    console.print(table)
    if json_out:
        atomic_write_bytes(json_out, json.dumps(records, indent=1).encode())


def _sequences(data: Path, model, rscnet_id: str, cache: Path | None, seed: int):
    """Sequence features of ``data`` (clips folder, or an extracted .npz) for the RSC-Net ``rscnet_id``."""
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import same_weights
    from lrpose.training.sequences import Sequences, extract

    if data.is_file():
        seqs = Sequences.load(data)
        if not same_weights(seqs.rscnet_id, rscnet_id):
            raise InputError(f"{data} holds features of {seqs.rscnet_id}, not of {rscnet_id}")
        return seqs
    if cache is not None and cache.is_file():
        seqs = Sequences.load(cache)
        if seqs.rscnet_id == rscnet_id:
            console.print(f"features: reusing {cache}", soft_wrap=True)
            return seqs
    if not data.is_dir():
        raise InputError(f"--data {data} is neither a folder of clips nor a features .npz")
    with _progress_bar() as bar:
        task = bar.add_task(f"features {data.name}", total=None, info="")
        seqs = extract(data, model, rscnet_id, seed=seed, progress=lambda d, t: bar.update(task, completed=d, total=t))
    if cache is not None:
        seqs.save(cache)
    return seqs


def _eval_temporal(data, weights, temporal_weights, json_out, smpl, standin, config) -> None:
    import json

    from lrpose import assets
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.files import atomic_write_bytes
    from lrpose.models.checkpoint import load_checkpoint, load_temporal, same_weights
    from lrpose.training.temporal import evaluate_temporal

    rscnet_path = assets.resolve("rscnet", weights)
    model, info = load_checkpoint(rscnet_path)
    module, tinfo = load_temporal(assets.resolve("temporal", temporal_weights))
    if not same_weights(tinfo.rscnet_id, info.checkpoint_id):
        raise InputError(f"the temporal module was trained on features of {tinfo.rscnet_id}, not of {info.checkpoint_id}")
    body = load_body(_body_config(config, smpl, None, standin))
    seqs = _sequences(data, model, info.checkpoint_id, None, seed=1)
    rows = {
        "per-frame (RSC-Net)": evaluate_temporal(None, model, body, seqs),
        "temporal (GRU)": evaluate_temporal(module, model, body, seqs),
    }
    first = next(iter(rows.values()))
    table = Table(title=f"{data}: {first['sequences']} sequences, {first['frames']} frames (mm; accel in mm/frame^2)")
    for col in ("model", "MPJPE", "PA-MPJPE", "accel", "accel error"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['mpjpe']:.1f}", f"{r['pa_mpjpe']:.1f}", f"{r['accel']:.2f}", f"{r['accel_error']:.2f}")
    console.print(table)
    if json_out:
        atomic_write_bytes(json_out, json.dumps(rows, indent=1).encode())


@app.command("eval")
def evaluate(
    data: Annotated[
        Path, typer.Option("--data", help="Synthetic crops folder or SPIN .npz (pose); clips folder or features .npz (temporal).")
    ],
    weights: Annotated[
        list[Path] | None, typer.Option("--weights", help="Checkpoint(s) to compare (repeatable); default: the shipped one.")
    ] = None,
    task: Annotated[
        str, typer.Option("--task", help="pose (RSC-Net), temporal (per-frame vs GRU on clips) or texture (texture network).")
    ] = "pose",
    temporal_weights: Annotated[Path | None, typer.Option("--temporal-weights", help="temporal: the module to evaluate.")] = None,
    low_res: Annotated[int, typer.Option("--low-res", help="texture: person image side fed to the network.")] = 32,
    reid_weights: Annotated[
        Path | None, typer.Option("--reid-weights", help="texture: ResNet-50 ReID backbone for the ReID distance.")
    ] = None,
    resolutions: Annotated[str, typer.Option("--resolutions", help="Person crop sides in px.")] = "224,176,96,52,32",
    img_root: Annotated[Path | None, typer.Option("--img-root", help="Image folder of SPIN-format data.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate the first N samples only.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the table as JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the table as CSV.")] = None,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """MPJPE / PA-MPJPE / PVE (mm) of checkpoints at chosen person resolutions."""
    import csv
    import io
    import json

    from lrpose import assets
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.evaluation import evaluate as run_eval
    from lrpose.files import atomic_write_bytes
    from lrpose.models.checkpoint import load_checkpoint

    if task == "texture":
        _eval_texture(data, weights, low_res, reid_weights, limit, json_out, smpl, standin, config)
        return
    if task == "temporal":
        _eval_temporal(data, weights[0] if weights else None, temporal_weights, json_out, smpl, standin, config)
        return
    if task != "pose":
        raise InputError(f"--task must be pose, temporal or texture, not '{task}'")
    try:
        sides = [int(v) for v in resolutions.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--resolutions must be comma-separated integers, got '{resolutions}'") from None
    if not sides or min(sides) < 1:
        raise InputError("--resolutions needs at least one positive size")
    dataset = _data_set(data, img_root)
    body = load_body(_body_config(config, smpl, None, standin))
    paths = list(weights) if weights else [assets.resolve("rscnet")]
    rows = []
    for path in paths:
        model, info = load_checkpoint(path)
        if not info.trained:
            err_console.print(Text(f"note: {path} is marked untrained", style="yellow"))
        results = run_eval(model, body, dataset, sides, limit=limit)
        rows.append((str(path), results))
    table = Table(title=f"MPJPE / PA-MPJPE (mm) on {data} ({rows[0][1][0].samples} samples)")
    table.add_column("checkpoint", overflow="fold")
    for r in sides:
        table.add_column(f"{r} px", justify="right")
    for name, results in rows:
        table.add_row(name, *[f"{x.mpjpe:.1f} / {x.pa_mpjpe:.1f}" for x in results])
    console.print(table)
    records = [{"checkpoint": name, **vars(x)} for name, results in rows for x in results]
    if json_out:
        atomic_write_bytes(json_out, json.dumps(records, indent=1).encode())
    if csv_out:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        atomic_write_bytes(csv_out, buf.getvalue().encode())


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
    with _progress_bar() as bar:
        task = bar.add_task(f"synth {kind}", total=None, info="")
        files = generate(cfg, body_cfg, out, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(files)} {'shards' if kind == 'crops' else 'clips'} to {out}", soft_wrap=True)
    if preview_sheet:
        console.print(f"preview: {preview(out, kind)}", soft_wrap=True)


@train_app.command("rscnet")
def train_rscnet(
    data: Annotated[list[Path], typer.Option("--data", help="Synthetic crop folder(s) and/or SPIN-format .npz file(s) (repeatable).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log, loss plot.")],
    img_root: Annotated[list[Path] | None, typer.Option("--img-root", help="Image folder per SPIN .npz, in the same order.")] = None,
    ratios: Annotated[str | None, typer.Option("--ratios", help="Mixing ratios per --data, e.g. 0.3,0.6,0.1.")] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Start from a checkpoint (lrpose, official RSC-Net or SPIN).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue a run from its last.pt (step, optimizer, queue).")] = None,
    depth: Annotated[int, typer.Option("--depth", help="50 (paper), 34 or 18.")] = 18,
    input_size: Annotated[int, typer.Option("--input-size")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    steps: Annotated[int, typer.Option("--steps")] = 1000,
    lr: Annotated[float, typer.Option("--lr")] = 5e-5,
    lambda_s: Annotated[float, typer.Option("--lambda-s")] = 0.1,
    lambda_f: Annotated[float, typer.Option("--lambda-f")] = 0.1,
    ss: Annotated[str, typer.Option("--ss", help="directional | highest | undirected | none")] = "directional",
    cl: Annotated[str, typer.Option("--cl", help="contrastive | mse | cosine | none")] = "contrastive",
    queue_size: Annotated[int, typer.Option("--queue-size")] = 8192,
    progressive: Annotated[bool, typer.Option("--progressive/--no-progressive")] = True,
    baseline: Annotated[bool, typer.Option("--baseline", help="Plain network: no resolution-aware alphas.")] = False,
    ckpt_every: Annotated[int, typer.Option("--ckpt-every")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Data loader processes.")] = 0,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train RSC-Net (progressive multi-resolution, directional self-supervision, contrastive loss)."""
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.training.loop import TrainConfig
    from lrpose.training.loop import train_rscnet as run

    if ss not in ("directional", "highest", "undirected", "none") or cl not in ("contrastive", "mse", "cosine", "none"):
        raise InputError("--ss must be directional|highest|undirected|none and --cl contrastive|mse|cosine|none")
    for name, value in (("--steps", steps), ("--batch-size", batch_size), ("--queue-size", queue_size), ("--ckpt-every", ckpt_every)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    try:
        ratio_values = tuple(float(v) for v in ratios.split(",")) if ratios else ()
    except ValueError:
        raise InputError(f"--ratios must be comma-separated numbers, got '{ratios}'") from None
    cfg = TrainConfig(
        data=tuple(str(d) for d in data), out=str(out), img_roots=tuple(str(r) for r in img_root or []), ratios=ratio_values,
        init=str(init) if init else None, depth=depth, input_size=input_size, batch_size=batch_size, steps=steps, lr=lr,
        lambda_s=lambda_s, lambda_f=lambda_f, ss=ss, cl=cl, queue_size=queue_size, progressive=progressive, baseline=baseline,
        ckpt_every=ckpt_every, seed=seed, workers=workers,
    )  # fmt: skip
    body = load_body(_body_config(config, smpl, None, standin))
    with _progress_bar() as bar:
        task = bar.add_task("train rscnet", total=steps, info="")

        def report(step: int, total: int, parts: dict) -> None:
            info = f"loss {parts['loss']:.3f} (basic {parts['basic']:.3f} ss {parts['ss']:.4f} cl {parts['cl']:.3f})"
            bar.update(task, completed=step, info=info)

        is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
        final = run(cfg, body, resume=resume, progress=report if is_main else None)
    console.print(f"checkpoint: {final} | log: {out / 'train_log.csv'} | plot: {out / 'loss.png'}", soft_wrap=True)


@train_app.command("temporal")
def train_temporal(
    data: Annotated[Path, typer.Option("--data", help="Synthetic clips (lrpose synth --kind video) or a features .npz.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: features, checkpoints, log, loss plot.")],
    weights: Annotated[Path | None, typer.Option("--weights", help="The (frozen) RSC-Net whose features phi it reads.")] = None,
    heldout: Annotated[Path | None, typer.Option("--heldout", help="Held-out clips: per-frame vs temporal metrics at the end.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from the run's last.pt.")] = None,
    steps: Annotated[int, typer.Option("--steps")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Frames per training window (VIBE: 16).")] = 16,
    lr: Annotated[float, typer.Option("--lr")] = 1e-4,
    hidden: Annotated[int, typer.Option("--hidden", help="GRU hidden size (VIBE: 1024).")] = 1024,
    adv_weight: Annotated[float, typer.Option("--adv-weight", help="Adversarial motion loss weight (0 = off).")] = 0.0,
    motion_data: Annotated[
        list[Path] | None, typer.Option("--motion-data", help="Real motion .npz files/folders (AMASS 'poses' or 'pose' (T, 72)).")
    ] = None,
    ckpt_every: Annotated[int, typer.Option("--ckpt-every")] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the GRU temporal module on RSC-Net features of synthetic clips (offline extraction, as in the paper)."""
    import json

    from lrpose import assets
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.files import atomic_write_bytes
    from lrpose.models.checkpoint import load_checkpoint, load_temporal
    from lrpose.training.temporal import TemporalTrainConfig, evaluate_temporal
    from lrpose.training.temporal import train_temporal as run

    if steps < 1 or batch_size < 1 or seq_len < 3 or ckpt_every < 1:
        raise InputError("--steps, --batch-size and --ckpt-every must be at least 1, --seq-len at least 3")
    rscnet_path = assets.resolve("rscnet", weights)
    model, info = load_checkpoint(rscnet_path)
    if not info.trained:
        err_console.print(Text(f"WARNING: {rscnet_path} is an UNTRAINED RSC-Net: its features are meaningless", style="bold yellow"))
    body = load_body(_body_config(config, smpl, None, standin))
    out.mkdir(parents=True, exist_ok=True)
    train_seqs = _sequences(data, model, info.checkpoint_id, out / "features_train.npz", seed=seed)
    cfg = TemporalTrainConfig(
        out=str(out), steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, hidden=hidden, adv_weight=adv_weight,
        motion_data=tuple(str(p) for p in motion_data or ()), seed=seed, ckpt_every=ckpt_every,
    )  # fmt: skip
    with _progress_bar() as bar:
        task = bar.add_task("train temporal", total=steps, info="")

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, info=f"loss {parts['loss']:.4f} kp3d {parts['kp3d']:.4f}")

        final = run(cfg, body, train_seqs, rscnet_path, info.checkpoint_id, resume=resume, progress=report)
    console.print(f"checkpoint: {final} | log: {out / 'train_log.csv'} | plot: {out / 'loss.png'}", soft_wrap=True)
    if heldout is not None:
        seqs = _sequences(heldout, model, info.checkpoint_id, out / "features_heldout.npz", seed=seed + 1)
        module, _ = load_temporal(final)
        rows = {"per-frame": evaluate_temporal(None, model, body, seqs), "temporal": evaluate_temporal(module, model, body, seqs)}
        for name, r in rows.items():
            console.print(
                f"{name}: MPJPE {r['mpjpe']:.1f} PA-MPJPE {r['pa_mpjpe']:.1f} mm | accel {r['accel']:.2f} "
                f"accel error {r['accel_error']:.2f} mm/frame^2 ({r['sequences']} sequences)"
            )
        atomic_write_bytes(out / "eval.json", json.dumps(rows, indent=1).encode())


@train_app.command("texture")
def train_texture(
    data: Annotated[Path, typer.Option("--data", help="Synthetic crops with ground-truth UV textures (lrpose synth --kind crops).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder.")],
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from the run's last.pt.")] = None,
    masks: Annotated[
        Path | None, typer.Option("--masks", help="With --data a folder of pedestrian images: their masks (same names, PNG).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option("--weights", help="RSC-Net checkpoint for mesh and camera (required for image folders).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    lr: Annotated[float, typer.Option("--lr")] = 2e-4,
    low_res: Annotated[int, typer.Option("--low-res", help="Person image side fed to the network (the paper: 32).")] = 32,
    tex_size: Annotated[int, typer.Option("--tex-size")] = 128,
    width: Annotated[int, typer.Option("--width", help="Channels of the first block.")] = 32,
    no_global: Annotated[bool, typer.Option("--no-global", help="Ablation: no global context module.")] = False,
    fusion: Annotated[str, typer.Option("--fusion", help="sum (paper) or concat.")] = "sum",
    reid_weights: Annotated[
        Path | None, typer.Option("--reid-weights", help="ResNet-50 ReID backbone state dict for the ReID loss.")
    ] = None,
    reid_weight: Annotated[float, typer.Option("--reid-weight")] = 0.0,
    ckpt_every: Annotated[int, typer.Option("--ckpt-every")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the texture network (TexGlo) on synthetic crops with ground-truth UV maps."""
    from lrpose.body import load_body
    from lrpose.errors import InputError
    from lrpose.training.texture import TextureTrainConfig
    from lrpose.training.texture import train_texture as run

    if fusion not in ("sum", "concat"):
        raise InputError(f"--fusion must be sum or concat, not '{fusion}'")
    if steps < 1 or batch_size < 1 or ckpt_every < 1:
        raise InputError("--steps, --batch-size and --ckpt-every must be at least 1")
    cfg = TextureTrainConfig(
        data=str(data), out=str(out), steps=steps, batch_size=batch_size, lr=lr, low_res=low_res, tex_size=tex_size, width=width,
        global_context=not no_global, fusion=fusion, reid_weights=str(reid_weights) if reid_weights else None,
        reid_weight=reid_weight, ckpt_every=ckpt_every, seed=seed, masks=str(masks) if masks else None,
        mesh_weights=str(weights) if weights else None,
    )  # fmt: skip
    body = load_body(_body_config(config, smpl, None, standin))
    with _progress_bar() as bar:
        task = bar.add_task("train texture", total=steps, info="")

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, info=f"uv L1 {parts['uv_l1']:.4f} img L1 {parts['image_l1']:.4f}")

        final = run(cfg, body, resume=resume, progress=report)
    console.print(f"checkpoint: {final} | log: {out / 'train_log.csv'} | plot: {out / 'loss.png'}", soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes (1 library error, 2 usage, 130 interrupted)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        app(args=args, prog_name="lrpose")  # standalone mode: usage errors exit 2 via SystemExit
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except LrposeError as e:
        if "--debug" in args:
            traceback.print_exc()
        err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
        return 1
    return 0
