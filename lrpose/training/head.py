"""Training the head of an RSC-Net whose backbone stays fixed, from cached backbone outputs (``--cached-passes``).

With a frozen pose-pretrained backbone (``--freeze-backbone``; the YOLO11n-pose backbone) and its alphas
held at their values, everything a training step needs from the images is the backbone's pooled levels
(``ResolutionAwareYoloPose.grids``). They are computed once for ``passes`` passes over the data, each
with the training batches' own augmentation and resolution views (``StepBatches``: flips, rotations,
CCTV degradations, one random size per range), and kept with the labels in ``out/grids.pt``. The head
(readout, regressor, projection) then trains on them with the full loss (basic loss, directional
self-supervision, contrastive term) many times faster than through the backbone: on 2 CPU cores one
step through the backbone took ~4 s, one cached step ~0.1 s (``benchmarks/RESULTS.md``).

Why: a linear probe on these frozen features already faced people the right way 78 % of the time on
held-out crops where the shipped network (trained end to end for 4000 steps) managed 65 %, while 100
ordinary steps of the head had not left the mean pose; the head needed far more steps than the CPU
allowed through the backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from lrpose.errors import InputError
from lrpose.files import atomic_torch_save
from lrpose.models.checkpoint import read_weights_only
from lrpose.models.rscnet import RSCNet, RSCNetOutput

LABELS = ("pose", "betas", "S", "part", "has_smpl", "has_3d", "id", "ranges")


def cacheable(model: RSCNet) -> str | None:
    """None when ``model``'s backbone can be cached (fixed weights and alphas, a ``grids``/``readout_of`` split), else why not."""
    bb = model.backbone
    if not hasattr(bb, "grids"):
        return f"--cached-passes needs a backbone with a fixed part and a readout (yolopose), not '{model.config.backbone}'"
    head = tuple(prefix for prefix in bb.fresh_prefixes if prefix != "alphas.")  # what trains on the cache
    fixed = [n for n, p in bb.named_parameters() if p.requires_grad and not n.startswith(head)]
    if fixed:
        return f"--cached-passes needs --freeze-backbone (trainable backbone weights: {fixed[0]}, ...)"
    return None


@torch.no_grad()
def cache_grids(
    model: RSCNet, batches: torch.utils.data.Dataset, steps: int, path: Path, progress: Callable[[int], None] | None = None
) -> dict:
    """Run ``steps`` training batches (``batches[t]``, views of every range) through the fixed backbone; keep each
    view's pooled levels (float16) and the labels. Written atomically to ``path``; an existing cache is reused."""
    if path.exists():
        return read_weights_only(path)
    bb = model.backbone.eval()
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in (*LABELS, "grids")}
    for t in range(steps):
        batch = batches[t]
        ranges = batch["ranges"].tolist()
        if ranges != sorted(ranges) or len(ranges) != batch["images"].shape[1]:
            raise InputError("cached passes need every range's view in each batch (--no-progressive)")
        views = [torch.cat([g.flatten(1) for g in bb.grids(batch["images"][:, k], p)], 1) for k, p in enumerate(ranges)]
        parts["grids"].append(torch.stack(views, 1).half())
        for k in LABELS:
            parts[k].append(batch[k] if k != "ranges" else batch[k][None].expand(batch["images"].shape[0], -1))
    cache = {k: torch.cat(v) for k, v in parts.items()}
    atomic_torch_save(path, cache)
    return cache


def samples_per_pass(data: torch.utils.data.Dataset) -> int:
    """Samples in one pass over ``data``: every sample of every mixed dataset (a ``MixedDataset``'s own length is
    its largest part's, which would cache only that many of several folders)."""
    parts = getattr(data, "datasets", None)
    return sum(len(d) for d in parts) if parts else len(data)


def cached_batch(cache: dict, index: torch.Tensor) -> dict:
    """The samples ``index`` of a cache as a training batch (``grids`` (B, V, D) float32, labels, ``ranges`` (V,))."""
    batch = {k: cache[k][index] for k in (*LABELS, "grids")}
    batch["grids"] = batch["grids"].float()
    batch["ranges"] = batch["ranges"][0]
    return batch


def cached_outputs(model: RSCNet, grids: torch.Tensor, ranges: list[int]) -> list[RSCNetOutput]:
    """Per view: (B, D) flattened pooled levels -> the RSC-Net outputs the full network would give for those images."""
    bb = model.backbone
    shapes = [(c, bb.grid, bb.grid) for c in bb.level_channels]
    out = []
    for k, _ in enumerate(ranges):
        flat = grids[:, k]
        levels, start = [], 0
        for c, h, w in shapes:
            levels.append(flat[:, start : start + c * h * w].view(-1, c, h, w))
            start += c * h * w
        out.append(model.from_features(bb.readout_of(levels)))
    return out


def train_cached(cfg, body, resume: Path | None = None, progress: Callable[[int, int, dict], None] | None = None) -> Path:
    """``lrpose train rscnet --cached-passes K``: cache K augmented passes over the data through the fixed backbone
    (``out/grids.pt``, reused on resume), then train the head for ``cfg.steps`` steps of ``cfg.batch_size`` samples
    drawn from the cache (a function of seed and step, so a resumed run sees the same batches). Returns ``out/last.pt``."""
    import time

    from lrpose.resolution import NUM_RANGES
    from lrpose.training.cctv import CCTVConfig
    from lrpose.training.data import AugmentConfig, StepBatches
    from lrpose.training.loop import LOG_FIELDS, _saver, _setup, build_dataset, output_losses
    from lrpose.training.plumbing import RunFolder

    run = _setup(cfg, body, resume)
    model = run.model
    model.backbone.set_alphas_trainable(False)  # cached: the alphas stay at their values (1 for a fresh start)
    why = cacheable(model)
    if why:
        raise InputError(why)
    data = build_dataset(cfg)
    aug = AugmentConfig(cctv=CCTVConfig() if cfg.cctv else None)
    every_range = list(range(NUM_RANGES))
    batches = StepBatches(data, cfg.batch_size, cfg.seed, model.config.input_size, lambda t: every_range, aug)
    n_batches = cfg.cached_passes * -(-samples_per_pass(data) // cfg.batch_size)
    cache = cache_grids(model, batches, n_batches, Path(cfg.out) / "grids.pt")
    model.train()
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    if run.state is not None:
        optim.load_state_dict(run.state["optimizer"])
    folder = RunFolder(Path(cfg.out), LOG_FIELDS, cfg.steps, cfg.ckpt_every, _saver(cfg, run, optim, body.body_id), run.start, progress)
    n, t0 = len(cache["id"]), time.time()
    with folder:
        for step in range(run.start, cfg.steps):
            index = torch.randint(n, (cfg.batch_size,), generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
            batch = cached_batch(cache, index)
            ranges = batch["ranges"].tolist()
            loss, parts, hr_emb = output_losses(cached_outputs(model, batch["grids"], ranges), body, batch, run.queue, cfg)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            run.queue.enqueue(hr_emb, batch["id"])
            row = {**{k: parts[k] for k in LOG_FIELDS if k in parts}, "step": step + 1, "ranges": "".join(map(str, ranges)),
                   "seconds": f"{time.time() - t0:.1f}"}  # fmt: skip
            folder.step_done(step + 1, row, parts)
    return folder.finish()
