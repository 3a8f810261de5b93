"""``lrpose image``: one person in one image -> ``<stem>.npz``, ``<stem>_overlay.png`` and, with a
texture network, ``<stem>.obj`` / ``.mtl`` / ``_texture.png`` and ``<stem>_3view.png``.

The estimate comes from the video pipeline's estimation step (``Pipeline.estimate_image``), so an
image result is the same record, with the same file keys, as one frame of a track.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.crops import cut_square
from lrpose.errors import NonFiniteError
from lrpose.files import save_png
from lrpose.geometry import focal_for
from lrpose.models.texture import TexGlo
from lrpose.pipeline import Pipeline
from lrpose.render import render_overlay
from lrpose.results import RunInfo, save_image_result, save_textured_mesh
from lrpose.textured import predict_texture, three_view
from lrpose.types import PoseEstimate


@dataclass(frozen=True)
class ImageResult:
    """What ``process_image`` estimated and wrote."""

    estimate: PoseEstimate
    files: list[Path]
    """Every file written, the ``.npz`` first."""


def process_image(
    picture: np.ndarray,
    stem: Path,
    pipeline: Pipeline,
    info: RunInfo,
    box_xyxy: np.ndarray | None = None,
    save_verts: bool = False,
    texture_net: TexGlo | None = None,
    keypoints: np.ndarray | None = None,
    consume: bool = False,
) -> ImageResult:
    """Estimate the person in ``box_xyxy`` of ``picture`` ((H, W, 3) uint8 RGB; box ``[x1, y1, x2, y2]``
    pixels, padded ``pipeline.config.box_scale``; None: the whole image is a person-centred crop) and write ``<stem>.npz`` etc.
    ``keypoints`` (17, 3) detector COCO keypoints of that person: the body is fitted to them when
    the pipeline has a refiner. ``consume``: the overlay is drawn on ``picture`` itself, written last
    (no copy of a large photo; the caller must not use ``picture`` afterwards)."""
    h, w = picture.shape[:2]
    est = pipeline.estimate_image(picture, box_xyxy, keypoints)
    if not est.finite:
        raise NonFiniteError(f"the network ({info.checkpoint_id}) gave NaN or infinite values for this person; nothing was written")
    focal = focal_for(w, h)
    files = [stem.with_suffix(".npz"), stem.with_name(stem.name + "_overlay.png")]
    save_image_result(files[0], est, info, (w, h), focal, save_verts)
    if texture_net is not None:  # before the overlay, which may draw on the picture
        files += _write_textured(pipeline.body, texture_net, picture, est, stem)
    verts, trans = torch.from_numpy(est.vertices)[None], torch.from_numpy(est.trans)[None]
    drawn = render_overlay(picture, verts, pipeline.body.faces, trans, focal, in_place=consume)
    save_png(files[1], drawn, consume=True)
    return ImageResult(est, files)


def _write_textured(body: BodyModel, net: TexGlo, picture: np.ndarray, est: PoseEstimate, stem: Path) -> list[Path]:
    """Predict the person's UV texture; write the textured OBJ/MTL/PNG and the 3-view PNG."""
    tex = predict_texture(net, cut_square(picture, est.crop))
    files = save_textured_mesh(stem.with_suffix(".obj"), body, est.vertices, tex)
    view = stem.with_name(stem.name + "_3view.png")
    save_png(view, three_view(body, est.rotmats, est.betas, tex))
    return [*files, view]
