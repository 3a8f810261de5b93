"""``lrpose eval``: pose (MPJPE / PA-MPJPE / PVE / facing), temporal and texture metrics of checkpoints
(registered on the app of ``lrpose.cli``). Training modules are imported inside the command only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lrpose.cli import ConfigOpt, SmplOpt, StandinOpt, ThreadsOpt, app, console, load_body_for, note, on_interrupt, progress_bar
from lrpose.cli import _body_config as body_config
from lrpose.resolution import EVAL_SIZES


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
    resolutions: Annotated[str, typer.Option("--resolutions", help="Person crop sides in px.")] = ",".join(map(str, EVAL_SIZES)),
    img_root: Annotated[Path | None, typer.Option("--img-root", help="Image folder of SPIN-format data.")] = None,
    degrade: Annotated[
        str,
        typer.Option(
            "--degrade",
            help="pose: low-resolution views: official (Pillow bicubic down and up, as the official RSC-Net eval) "
            "or opencv (area down, OpenCV bicubic up, as lrpose trains).",
        ),
    ] = "official",
    pelvis: Annotated[
        str,
        typer.Option(
            "--pelvis",
            help="pose: MPJPE root: h36m (H36M joint 0, the official SPIN/RSC-Net eval) or hips (midpoint of the hips).",
        ),
    ] = "h36m",
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate the first N samples only.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the table as JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the table as CSV.")] = None,
    threads: ThreadsOpt = 0,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """MPJPE / PA-MPJPE / PVE (mm) of checkpoints at chosen person resolutions (or --task temporal / texture)."""
    from lrpose import assets
    from lrpose.config import check_choice
    from lrpose.files import save_csv, save_json
    from lrpose.metrics import PELVIS_MODES
    from lrpose.resolution import DEGRADE_METHODS
    from lrpose.threads import set_threads

    set_threads(threads)
    on_interrupt("interrupted: nothing was written")
    check_choice("task", task, ("pose", "temporal", "texture"))
    check_choice("degrade", degrade, DEGRADE_METHODS)
    check_choice("pelvis", pelvis, PELVIS_MODES)
    body = load_body_for(config, smpl, None, standin)
    if task == "texture":
        records = _eval_texture(data, [*weights] if weights else [assets.resolve("texture")], body, low_res, limit, reid_weights)
    elif task == "temporal":
        records = _eval_temporal(
            data, assets.resolve("rscnet", weights[0] if weights else None), assets.resolve("temporal", temporal_weights), body
        )
    else:
        paths = [*weights] if weights else [assets.resolve("rscnet")]
        smpl_place = body_config(config, smpl, None, standin).smpl
        records = _eval_pose(data, img_root, paths, body, smpl_place, resolutions, limit, degrade, pelvis)
    if json_out:
        save_json(json_out, records)
    if csv_out and task == "pose":
        save_csv(csv_out, records)


def _eval_pose(
    data: Path, img_root: Path | None, paths: list[Path], body, smpl: Path | None, resolutions: str, limit: int | None, degrade: str,
    pelvis: str,
) -> list[dict]:  # fmt: skip
    from lrpose.training.data import open_dataset
    from lrpose.training.evaluation import data_has_gender, evaluate_checkpoints, gendered_bodies, parse_resolutions

    sides = parse_resolutions(resolutions)
    dataset = open_dataset(data, img_root)
    gendered = None
    if data_has_gender(dataset):
        gendered, why = gendered_bodies(body, smpl)
        if gendered is None:
            note(f"warning: the data gives gender but {why}: ground truth posed with the {body.name} body (not the official protocol)")
    rows = evaluate_checkpoints(paths, body, dataset, sides, limit, pelvis, degrade, gendered)
    for row in rows:
        if not row.trained:
            note(f"note: {row.path} is marked untrained")
    gt_body = "gendered" if gendered else body.name
    title = f"MPJPE / PA-MPJPE (mm) / facing agreement on {data} ({rows[0].results[0].samples} samples; pelvis {pelvis}, "
    title += f"degrade {degrade}, GT {gt_body})"
    table = Table(title=title)
    table.add_column("checkpoint", overflow="fold")
    for r in sides:
        table.add_column(f"{r} px", justify="right")
    for row in rows:
        table.add_row(str(row.path), *[f"{x.mpjpe:.1f} / {x.pa_mpjpe:.1f} / {x.facing:.2f}" for x in row.results])
    console.print(table)
    return [rec for row in rows for rec in row.records()]


def _eval_temporal(data: Path, rscnet: Path, temporal: Path, body) -> dict:
    from lrpose.training.evaluation import evaluate_temporal_run

    with progress_bar() as bar:
        task = bar.add_task(f"features {data.name}", total=None, info="")
        rows = evaluate_temporal_run(data, rscnet, temporal, body, progress=lambda d, t: bar.update(task, completed=d, total=t))
    first = next(iter(rows.values()))
    table = Table(title=f"{data}: {first['sequences']} sequences, {first['frames']} frames (mm; accel in mm/frame^2)")
    for col in ("model", "MPJPE", "PA-MPJPE", "accel", "accel error"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['mpjpe']:.1f}", f"{r['pa_mpjpe']:.1f}", f"{r['accel']:.2f}", f"{r['accel_error']:.2f}")
    console.print(table)
    return rows


def _eval_texture(data: Path, paths: list[Path], body, low_res: int, limit: int | None, reid_weights: Path | None) -> list[dict]:
    from lrpose.training.evaluation import evaluate_texture_checkpoints

    records = evaluate_texture_checkpoints(paths, body, data, low_res, limit, reid_weights)
    reid = reid_weights is not None
    table = Table(title=f"texture metrics on {data} (person images {low_res} px; lower is better)")
    for col in ("checkpoint", "UV L1", "render L1", *(["ReID dist"] if reid else [])):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(r["checkpoint"], f"{r['uv_l1']:.4f}", f"{r['image_l1']:.4f}", *([f"{r['reid_distance']:.4f}"] if reid else []))
    console.print(table)
    return records
