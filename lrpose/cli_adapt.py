"""``lrpose adapt`` (registered on the app of ``lrpose.cli``): fit RSC-Net to the user's own camera by
self-training on their footage (library: ``lrpose.training.adapt``, imported inside the command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrpose.cli import (
    REFINE_MIN_HEIGHT,
    BoxScaleOpt,
    ConfigOpt,
    DeviceOpt,
    GenderOpt,
    RefineItersOpt,
    RefineMinHeightOpt,
    SmplOpt,
    StandinOpt,
    ThreadsOpt,
    _body_config,
    app,
    console,
    load_body_for,
    on_interrupt,
    progress_bar,
)  # fmt: skip
from lrpose.errors import InputError


@app.command()
def adapt(
    sources: Annotated[list[Path], typer.Argument(help="Your footage: video files (or folders of videos) from the camera to adapt to.")],
    out: Annotated[Path, typer.Option("--out", help="The adapted RSC-Net checkpoint to write (use it with --weights).")],
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Base RSC-Net checkpoint (default: the one the resolver finds).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Fine-tuning steps.")] = 300,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Last part of every video held out to check the result.")] = 0.2,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Labels, log and resumable checkpoint (default: <out>.run next to --out).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pseudo-labelled crops per step (3 resolution views each).")] = 8,
    synth_batch: Annotated[int, typer.Option("--synth-batch", help="Synthetic people with exact labels per step (0: none).")] = 4,
    lr: Annotated[float, typer.Option("--lr")] = 2e-5,
    train_backbone: Annotated[
        bool,
        typer.Option("--train-backbone", help="Also fine-tune a pretrained backbone's layers (default: readout, alphas, regressor)."),
    ] = False,
    temporal_steps: Annotated[
        int, typer.Option("--temporal-steps", help="Then fine-tune the temporal module (GRU) on the adapted network's features (0: off).")
    ] = 150,
    chunk: Annotated[int, typer.Option("--chunk", help="Frames per pseudo-label sequence of the temporal stage.")] = 24,
    frame_stride: Annotated[
        int,
        typer.Option("--frame-stride", help="Read one --window of frames in every k (0: the k that reads at most --max-frames a video)."),
    ] = 0,
    window: Annotated[int, typer.Option("--window", help="Consecutive frames read together (1: single frames, every k-th).")] = 24,
    max_frames: Annotated[
        int, typer.Option("--max-frames", help="Frames per video the pseudo-labelling reads (with --frame-stride 0).")
    ] = 600,
    label_stride: Annotated[int, typer.Option("--label-stride", help="Keep every k-th trustworthy frame of a person.")] = 1,
    max_labels: Annotated[int, typer.Option("--max-labels", help="At most this many pseudo-labels (evenly over time).")] = 6000,
    min_labels: Annotated[int, typer.Option("--min-labels", help="Refuse footage giving fewer pseudo-labels.")] = 64,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    detector: Annotated[str, typer.Option("--detector", help="auto | yolo (keypoints are needed: hog gives none).")] = "auto",
    detector_weights: Annotated[Path | None, typer.Option("--detector-weights", help="Ultralytics YOLO pose .pt file.")] = None,
    boxes: Annotated[
        Path | None, typer.Option("--boxes", help="JSON boxes with keypoints per frame instead of a detector (see lrpose video).")
    ] = None,
    det_size: Annotated[int, typer.Option("--det-size", help="Detector input size (longer side, px).")] = 1280,
    det_conf: Annotated[float | None, typer.Option("--det-conf", help="Detector score threshold.")] = None,
    box_scale: BoxScaleOpt = 1.2,
    refine_iters: RefineItersOpt = 10,
    refine_min_height: RefineMinHeightOpt = REFINE_MIN_HEIGHT,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Adapt RSC-Net to your camera: pseudo-labels from keypoint-fitted people in your footage, fine-tuning,
    a held-out check (the model is written only if it did not get worse)."""
    from lrpose.device import pick_device
    from lrpose.files import FolderLock, make_folder
    from lrpose.pipeline import Pipeline, PipelineConfig
    from lrpose.threads import set_threads
    from lrpose.training.adapt import Adaptation, AdaptConfig, fine_tune, gather
    from lrpose.training.adapt_temporal import TemporalAdaptConfig, heldout_score_temporal
    from lrpose.training.pseudo import LabelFilter
    from lrpose.video import expand_sources

    dev = pick_device(device)
    if temporal_steps < 0:
        raise InputError(f"--temporal-steps must be 0 (no temporal stage) or more, got {temporal_steps}")
    set_threads(threads)
    run_dir = run_dir or out.with_name(out.name + ".run")
    items = expand_sources(sources)
    body = load_body_for(config, smpl, gender, standin)
    model, info, base = _base(weights)
    flt = LabelFilter(min_height=refine_min_height)
    cfg = AdaptConfig(
        sources=tuple(str(p) for p in items), out=str(out), base_id=info.checkpoint_id, steps=steps, val_fraction=val_fraction,
        batch_size=batch_size, synth_batch=synth_batch, lr=lr, train_backbone=train_backbone, frame_stride=frame_stride, window=window,
        max_frames=max_frames, label_stride=label_stride, max_labels=max_labels, min_labels=min_labels, seed=seed, filter=flt,
    )  # fmt: skip
    from lrpose.training.adapt import _output_check

    _output_check(out)
    detect = _detector(detector, detector_weights, boxes, det_size, det_conf)
    every_frame = PipelineConfig(det_stride=1, box_scale=box_scale)  # a label needs the frame's own keypoints
    base_temporal = _temporal(model, info)
    tcfg = TemporalAdaptConfig(
        steps=temporal_steps, chunk=chunk, seed=seed, base_id=base_temporal.info.checkpoint_id if base_temporal.module else ""
    )
    pipeline = Pipeline(model, body, detect, base_temporal.module, every_frame, refiner=_refiner(body, refine_iters, refine_min_height))
    on_interrupt(f"interrupted: finished videos' labels and the last finished step are kept in {run_dir}; run the same command to go on")
    make_folder(run_dir)
    with FolderLock(run_dir):
        with progress_bar() as bar:
            task = bar.add_task("pseudo-labels", total=None, info="")
            labels, held, prov = gather(items, pipeline, cfg, run_dir, lambda name, k, n: bar.update(task, completed=k, total=n, info=name))
        console.print(
            f"{len(labels)} pseudo-labels ({prov['labels_per_range']} per range), {len(held)} held-out person-frames", soft_wrap=True
        )
        job = Adaptation(model, body, _body_config(config, smpl, gender, standin), labels, held, run_dir,
                         {"base_checkpoint": info.checkpoint_id, "base_file": str(base), **prov})  # fmt: skip
        with progress_bar("steps/s") as bar:
            task = bar.add_task("adapt", total=steps, info="")

            def report(done: int, total: int, parts: dict) -> None:
                bar.update(task, completed=done, info=f"loss {parts['loss']:.4f} | {len(labels)} pseudo-labels")

            base_video = heldout_score_temporal(model, base_temporal.module, body, held) if temporal_steps else None
            result = fine_tune(cfg, job, report, dev, write=temporal_steps == 0)
        _print_heldout("no refinement", result["heldout"]["before"], result["heldout"]["after"])
        if temporal_steps:
            _adapt_temporal(tcfg, job, base_temporal.module, result, out, base_video, cfg.tolerance)
    console.print(f"wrote {out} (use it with --weights {out})", soft_wrap=True)


def _base(weights: Path | None):  # noqa: ANN202 - (RSCNet, NetInfo, path)
    """The base RSC-Net: ``--weights`` or the resolver's; a trained RSC-Net or an lrpose one, else InputError."""
    from lrpose import assets
    from lrpose.models.checkpoint import load_rscnet

    path = assets.resolve("rscnet", weights) if weights is not None else assets.locate("rscnet").path
    if path is None:
        raise InputError("adapt needs a trained RSC-Net to start from: none was found (pass --weights)")
    _refuse_other_networks(path)
    model, info = load_rscnet(path)
    if info.source == "spin":
        raise InputError(f"{path} is a SPIN checkpoint (a plain ResNet), not RSC-Net: adapt fine-tunes RSC-Net's resolution-aware network")
    if not info.trained:
        raise InputError(f"{path} is an untrained RSC-Net: adapt needs a trained one to make pseudo-labels")
    return model, info, path


OTHER_NETWORKS = {
    "lrpose.temporal": "an lrpose temporal-module (GRU) checkpoint",
    "lrpose.texture": "an lrpose texture-network checkpoint",
    "lrpose.backbone": "a pretrained-backbone file (no SMPL regressor)",
}
"""Formats of our other network files, each refused as a base with its own words."""


def _refuse_other_networks(path: Path) -> None:
    """InputError (one line) when ``path`` is one of our files but not an RSC-Net (a temporal module,
    a texture network, a backbone): ``lrpose adapt`` fine-tunes RSC-Net and needs one to start from."""
    from lrpose.models.checkpoint import read_weights_only

    obj = read_weights_only(path)
    what = OTHER_NETWORKS.get(obj.get("format")) if isinstance(obj, dict) else None
    if what is not None:
        hint = f" (it belongs to {obj['rscnet_id']})" if isinstance(obj.get("rscnet_id"), str) else ""
        raise InputError(f"--weights {path} is {what}, not RSC-Net{hint}: give the RSC-Net checkpoint to adapt")


def _detector(name: str, weights: Path | None, boxes: Path | None, size: int, conf: float | None):  # noqa: ANN202
    """The YOLO pose detector (or ``--boxes`` with keypoints); InputError for one without keypoints."""
    from lrpose.detect import make_detector

    if name == "hog" and boxes is None:
        raise InputError("--detector hog gives no keypoints: adapt needs a pose detector (yolo)")
    det, line = make_detector(name, weights, boxes, size, conf)
    if not line.startswith(("yolo", "boxes")):
        raise InputError(f"adapt needs keypoints from the YOLO pose detector, and the detector is {line} (bash tools/install-yolo.sh)")
    return det


def _temporal(model, info):  # noqa: ANN001, ANN202 - TemporalChoice
    """The base's temporal module when it fits it (better pseudo-labels; the temporal stage starts from it), else none."""
    from lrpose.models.temporal_choice import find_temporal

    choice = find_temporal(None, model, info)
    console.print(f"pseudo-labels from: RSC-Net {info.checkpoint_id}, temporal {choice.line}, keypoint fitting", soft_wrap=True)
    return choice


def _print_heldout(what: str, b: dict, a: dict) -> None:
    console.print(
        f"held-out ({b['n']} person-frames, {what}): keypoint error {b['kp_error']:.4f} -> {a['kp_error']:.4f} of the height, "
        f"facing agreement {b['facing']:.3f} -> {a['facing']:.3f}",
        soft_wrap=True,
    )


def _adapt_temporal(tcfg, job, base, provenance: dict, out: Path, base_video: dict, tolerance: float) -> None:  # noqa: ANN001
    """Second stage: the temporal module for the adapted RSC-Net (``job.model``) on pseudo-label chunks,
    then the one file with both (``write_adapted``); without usable chunks the file holds RSC-Net alone.
    ``base_video``: the held-out score of the base with its own temporal module (what ``lrpose video``
    gave before); an adapted pair that scores worse than it is not written (``AdaptRefused``)."""
    from dataclasses import replace

    from lrpose.models.checkpoint import weights_digest
    from lrpose.models.temporal import TemporalModule
    from lrpose.training.adapt import AdaptRefused, worse, write_adapted
    from lrpose.training.adapt_temporal import fine_tune_temporal, heldout_score_temporal, label_sequences

    tcfg = replace(tcfg, rscnet_digest=weights_digest(job.model.state_dict()))  # a resume must be on these features
    seqs = label_sequences(job.model, job.body, job.labels, tcfg)
    if len(seqs.length) == 0:
        console.print(f"note: no track gave {tcfg.min_chunk} consecutive pseudo-labels: the temporal module is not adapted", soft_wrap=True)
        write_adapted(out, job.model, job.body.body_id, provenance)
        return
    start = base if base is not None else TemporalModule.from_rscnet(job.model)
    console.print(
        f"temporal module: {len(seqs.length)} chunks ({int(seqs.length.sum())} frames) of the adapted network's features", soft_wrap=True
    )
    with progress_bar("steps/s") as bar:
        task = bar.add_task("adapt temporal", total=tcfg.steps, info="")

        def report(done: int, total: int, parts: dict) -> None:
            bar.update(task, completed=done, info=f"loss {parts['loss']:.4f} | {len(seqs.length)} chunks")

        module, tprov = fine_tune_temporal(tcfg, start, job.body, seqs, job.run_dir / "temporal", job.body.body_id, report)
    console.print(f"temporal module: loss {tprov['loss_first']:.4f} -> {tprov['loss_last']:.4f} over {tcfg.steps} steps", soft_wrap=True)
    after = heldout_score_temporal(job.model, module, job.body, job.heldout)
    _print_heldout("with the temporal module, no refinement", base_video, after)
    tprov = {**tprov, "heldout": {"before": base_video, "after": after}}
    why = worse(base_video, after, tolerance)
    if why is not None:
        raise AdaptRefused(
            f"the adapted network with its adapted temporal module is worse on the held-out part than the base with its own ({why}): "
            f"{out} not written (run kept in {job.run_dir}; more footage, fewer --temporal-steps or --steps may help)"
        )
    write_adapted(out, job.model, job.body.body_id, provenance, module, tprov)


def _refiner(body, iters: int, min_height: float):  # noqa: ANN001, ANN202
    from lrpose.refine import RefineConfig, Refiner

    return Refiner(body, RefineConfig(iters=iters, min_height=min_height))
