"""``lrpose train rscnet|temporal|texture`` and ``lrpose synth`` (registered on the
app of ``lrpose.cli``). Training modules are imported inside the commands only."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from lrpose.cli import ConfigOpt, SmplOpt, StandinOpt, app, console, load_body_for, note, on_interrupt, progress_bar, train_app
from lrpose.cli import _body_config as body_config

OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Start a fresh run in a folder that holds an earlier run (its files are replaced).")
]


def _claim(out: Path, resume: Path | None, overwrite: bool) -> None:
    from lrpose.training.plumbing import claim_run_folder

    claim_run_folder(out, resume, overwrite)
    on_interrupt(f"interrupted: the last finished step is saved in {out / 'last.pt'}; continue with --resume {out / 'last.pt'}")


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
    scene_seed: Annotated[
        int | None, typer.Option("--scene-seed", help="video: one fixed camera, background and lighting for every clip.")
    ] = None,
    pitch: Annotated[str | None, typer.Option("--pitch", help="video: camera tilt range LO,HI in degrees (default: per kind).")] = None,
    light: Annotated[float, typer.Option("--light", help="video: light scale (below 1: darker).")] = 1.0,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Generate synthetic people with full ground truth (crops or CCTV-like clips)."""
    on_interrupt("interrupted: finished files kept; run the same command again to continue")
    from lrpose.training.preview import preview
    from lrpose.training.synth import SynthConfig, generate

    cfg = SynthConfig(
        kind=kind, n=n, seed=seed, crop_size=crop_size, tex_size=tex_size, shard_size=shard_size, workers=workers,
        poses=str(poses) if poses else None, backgrounds=str(backgrounds) if backgrounds else None,
        width=width, height=height, fps=fps, seconds=seconds, max_people=max_people, scene_seed=scene_seed,
        pitch_deg=_pair(pitch, "--pitch"), light=light,
    )  # fmt: skip
    body_cfg = body_config(config, smpl, None, standin)
    with progress_bar() as bar:
        task = bar.add_task(f"synth {kind}", total=None, info="")
        files = generate(cfg, body_cfg, out, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(files)} {'shards' if kind == 'crops' else 'clips'} to {out}", soft_wrap=True)
    if preview_sheet:
        console.print(f"preview: {preview(out, kind)}", soft_wrap=True)


def _pair(text: str | None, flag: str) -> tuple[float, float] | None:
    """``LO,HI`` -> (lo, hi); None stays None; InputError when it is not two numbers."""
    if text is None:
        return None
    from lrpose.errors import InputError

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} must be two numbers LO,HI, got '{text}'") from None
    return lo, hi


@train_app.command("rscnet")
def train_rscnet(
    data: Annotated[
        list[Path],
        typer.Option(
            "--data", help="Synthetic crop folder(s), synth:SEED (rendered on the fly) and/or SPIN-format .npz file(s) (repeatable)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log, loss plot.")],
    img_root: Annotated[list[Path] | None, typer.Option("--img-root", help="Image folder per SPIN .npz, in the same order.")] = None,
    ratios: Annotated[str | None, typer.Option("--ratios", help="Mixing ratios per --data, e.g. 0.3,0.6,0.1.")] = None,
    init: Annotated[Path | None, typer.Option("--init", help="Start from a checkpoint (lrpose, official RSC-Net or SPIN).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue a run from its last.pt (step, optimizer, queue).")] = None,
    overwrite: OverwriteOpt = False,
    backbone: Annotated[
        str, typer.Option("--backbone", help="resnet (--depth), mobilenetv2 (ImageNet) or yolopose (YOLO11n-pose, COCO keypoints).")
    ] = "resnet",
    freeze_backbone: Annotated[bool, typer.Option("--freeze-backbone", help="Keep the pretrained backbone fixed.")] = False,
    cached_passes: Annotated[
        int, typer.Option("--cached-passes", help="> 0: train the head only, on the fixed backbone's outputs for N augmented passes.")
    ] = 0,
    backbone_init: Annotated[
        str | None, typer.Option("--backbone-init", help="Pretrained-backbone file (default: the shipped one; 'none': random).")
    ] = None,
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
    cctv: Annotated[bool, typer.Option("--cctv", help="CCTV degradations: light, occluders, truncation, blur, noise, JPEG/H.264.")] = False,
    smpl: SmplOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train RSC-Net (progressive multi-resolution, directional self-supervision, contrastive loss)."""
    from lrpose.errors import InputError
    from lrpose.training.loop import TrainConfig
    from lrpose.training.loop import train_rscnet as run

    _claim(out, resume, overwrite)
    try:
        ratio_values = tuple(float(v) for v in ratios.split(",")) if ratios else ()
    except ValueError:
        raise InputError(f"--ratios must be comma-separated numbers, got '{ratios}'") from None
    cfg = TrainConfig(
        data=tuple(str(d) for d in data), out=str(out), img_roots=tuple(str(r) for r in img_root or []), ratios=ratio_values,
        init=str(init) if init else None, backbone=backbone, backbone_init=backbone_init, depth=depth, input_size=input_size,
        batch_size=batch_size, steps=steps, lr=lr, freeze_backbone=freeze_backbone, cached_passes=cached_passes,
        lambda_s=lambda_s, lambda_f=lambda_f, ss=ss, cl=cl, queue_size=queue_size, progressive=progressive, baseline=baseline,
        ckpt_every=ckpt_every, seed=seed, workers=workers, cctv=cctv,
    )  # fmt: skip
    body = load_body_for(config, smpl, None, standin)
    _train("train rscnet", cfg.steps, out, _RSCNET_INFO, lambda report: run(cfg, body, resume=resume, progress=report))


_RSCNET_INFO = "loss {loss:.3f} (basic {basic:.3f} ss {ss:.4f} cl {cl:.3f})"


def _train(name: str, steps: int, out: Path, info: str, call: Callable[[Callable | None], Path]) -> Path:
    """``call(progress)`` a trainer under a progress bar showing ``info.format(**loss_parts)`` (under
    torchrun only rank 0 reports), then say where its files are."""
    with progress_bar() as bar:
        task = bar.add_task(name, total=steps, info="")

        def report(step: int, total: int, parts: dict) -> None:
            bar.update(task, completed=step, info=info.format(**parts))

        final = call(report if int(os.environ.get("RANK", "0")) == 0 else None)
    console.print(f"checkpoint: {final} | log: {out / 'train_log.csv'} | plot: {out / 'loss.png'}", soft_wrap=True)
    return final


@train_app.command("temporal")
def train_temporal(
    data: Annotated[Path, typer.Option("--data", help="Synthetic clips (lrpose synth --kind video) or a features .npz.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: features, checkpoints, log, loss plot.")],
    weights: Annotated[Path | None, typer.Option("--weights", help="The (frozen) RSC-Net whose features phi it reads.")] = None,
    heldout: Annotated[Path | None, typer.Option("--heldout", help="Held-out clips: per-frame vs temporal metrics at the end.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from the run's last.pt.")] = None,
    overwrite: OverwriteOpt = False,
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
    from lrpose import assets
    from lrpose.files import save_json
    from lrpose.models.checkpoint import load_rscnet, load_temporal
    from lrpose.training.temporal import TemporalTrainConfig, evaluate_temporal
    from lrpose.training.temporal import train_temporal as run

    cfg = TemporalTrainConfig(
        out=str(out), steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr, hidden=hidden, adv_weight=adv_weight,
        motion_data=tuple(str(p) for p in motion_data or ()), seed=seed, ckpt_every=ckpt_every,
    )  # fmt: skip
    _claim(out, resume, overwrite)
    rscnet_path = assets.resolve("rscnet", weights)
    model, info = load_rscnet(rscnet_path)
    if not info.trained:
        note(f"WARNING: {rscnet_path} is an UNTRAINED RSC-Net: its features are meaningless", "bold yellow")
    body = load_body_for(config, smpl, None, standin)
    out.mkdir(parents=True, exist_ok=True)
    train_seqs = _features(data, model, info.checkpoint_id, out / "features_train.npz", seed)
    final = _train(
        "train temporal", cfg.steps, out, "loss {loss:.4f} kp3d {kp3d:.4f}",
        lambda report: run(cfg, body, train_seqs, rscnet_path, info.checkpoint_id, resume=resume, progress=report),
    )  # fmt: skip
    if heldout is not None:
        seqs = _features(heldout, model, info.checkpoint_id, out / "features_heldout.npz", seed + 1)
        module, _ = load_temporal(final)
        rows = {"per-frame": evaluate_temporal(None, model, body, seqs), "temporal": evaluate_temporal(module, model, body, seqs)}
        for name, r in rows.items():
            console.print(
                f"{name}: MPJPE {r['mpjpe']:.1f} PA-MPJPE {r['pa_mpjpe']:.1f} mm | accel {r['accel']:.2f} "
                f"accel error {r['accel_error']:.2f} mm/frame^2 ({r['sequences']} sequences)"
            )
        save_json(out / "eval.json", rows)


def _features(data: Path, model, rscnet_id: str, cache: Path, seed: int):
    """Sequence features for temporal training, with a progress bar while they are extracted."""
    from lrpose.training.sequences import features_for

    with progress_bar() as bar:
        task = bar.add_task(f"features {data.name}", total=None, info="")
        seqs, how = features_for(data, model, rscnet_id, cache, seed, progress=lambda d, t: bar.update(task, completed=d, total=t))
    console.print(f"features: {how}", soft_wrap=True)
    return seqs


@train_app.command("texture")
def train_texture(
    data: Annotated[Path, typer.Option("--data", help="Synthetic crops with ground-truth UV textures (lrpose synth --kind crops).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder.")],
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue from the run's last.pt.")] = None,
    overwrite: OverwriteOpt = False,
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
    from lrpose.training.texture import TextureTrainConfig
    from lrpose.training.texture import train_texture as run

    cfg = TextureTrainConfig(
        data=str(data), out=str(out), steps=steps, batch_size=batch_size, lr=lr, low_res=low_res, tex_size=tex_size, width=width,
        global_context=not no_global, fusion=fusion, reid_weights=str(reid_weights) if reid_weights else None,
        reid_weight=reid_weight, ckpt_every=ckpt_every, seed=seed, masks=str(masks) if masks else None,
        mesh_weights=str(weights) if weights else None,
    )  # fmt: skip
    _claim(out, resume, overwrite)
    body = load_body_for(config, smpl, None, standin)
    _train(
        "train texture",
        cfg.steps,
        out,
        "uv L1 {uv_l1:.4f} img L1 {image_l1:.4f}",
        lambda report: run(cfg, body, resume=resume, progress=report),
    )
