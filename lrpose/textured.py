"""Textured people at inference: predict a UV texture from a person crop and show it on the mesh."""

from __future__ import annotations

import math

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.crops import normalize
from lrpose.geometry import SPIN_FOCAL_PX, weak_perspective_project
from lrpose.render import lambert, pixel_normals, project_to_screen, rasterize, sample_texture, texel_visibility
from lrpose.resolution import degrade

LOW_RES = 32  # the paper feeds 32 px person images (enlarged to the network input)
FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@torch.no_grad()
def predict_texture(net, crop: np.ndarray) -> np.ndarray:
    """(T, T, 3) uint8 UV texture from a square person crop (H, W, 3) uint8 of any size."""
    x = normalize(degrade(crop, LOW_RES, net.config.input_size))[None]
    return (net(x)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def three_view(body: BodyModel, rotmats: np.ndarray, betas: np.ndarray, texture: np.ndarray, size: int = 256) -> np.ndarray:
    """(size, 3 * size, 3) uint8: the textured body in its pose seen from the front, the side and the back."""
    rot = torch.from_numpy(rotmats).float()
    tex = torch.from_numpy(texture).permute(2, 0, 1)[None].float() / 255.0
    panels = []
    for yaw in (0.0, math.pi / 2, math.pi):
        c, s = math.cos(yaw), math.sin(yaw)
        turn = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        out = body(rot[None, 1:], (turn @ FLIP)[None], torch.from_numpy(betas).float()[None])
        v = out.vertices
        lo, hi = v[0].min(0).values, v[0].max(0).values
        centre, extent = (lo + hi) / 2, float((hi - lo)[:2].max())
        focal = SPIN_FOCAL_PX
        trans = torch.tensor([[-float(centre[0]), -float(centre[1]), focal * extent * 1.1 / size]])
        screen = project_to_screen(v, trans, focal, torch.tensor([[size / 2 - 0.5, size / 2 - 0.5]]))
        frags = rasterize(screen, body.faces, size, size)
        albedo = sample_texture(frags, body.uv, body.uv_faces, tex)
        light = 0.45 + 0.55 * lambert(pixel_normals(frags, v + trans[:, None], body.faces), two_sided=True)
        rgb = (albedo * light[..., None]).clamp(0, 1)[0]
        img = torch.where(frags.mask[0][..., None], rgb, torch.ones(3))
        panels.append((img.numpy() * 255).astype(np.uint8))
    return np.concatenate(panels, axis=1)


def frame_weight(root_rotmat: np.ndarray, native_size: float) -> float:
    """How much one frame's texture counts when fusing a track: more for larger (higher-resolution)
    crops, ``min(1, native/224)``, and for frontal views, ``0.5 + 0.5 * max(0, facing)`` where facing is
    the cosine between the body's forward axis and the direction to the camera (camera frame)."""
    forward = np.asarray(root_rotmat) @ np.array([0.0, 0.0, 1.0])
    facing = max(0.0, -float(forward[2]))
    return float(np.clip(native_size / 224.0, 0.05, 1.0) * (0.5 + 0.5 * facing))


class TextureFusion:
    """Running weighted texture mean of one track (memory independent of the track's length).

    ``add`` one frame at a time; ``result`` gives each texel's weighted mean over the frames that
    see it, and for texels no frame sees the weighted mean of all frames (the network's guess for
    hidden parts).
    """

    def __init__(self, tex_size: int) -> None:
        self.seen_sum = np.zeros((tex_size, tex_size, 3))
        self.seen_w = np.zeros((tex_size, tex_size))
        self.all_sum = np.zeros((tex_size, tex_size, 3))
        self.all_w = 0.0
        self.frames = 0

    def add(self, texture: np.ndarray, visible: np.ndarray, weight: float) -> None:
        """texture (T, T, 3) uint8, visible (T, T) bool, weight from ``frame_weight``."""
        t = texture.astype(np.float64)
        seen = visible.astype(np.float64) * weight
        self.seen_sum += t * seen[..., None]
        self.seen_w += seen
        self.all_sum += t * weight
        self.all_w += weight
        self.frames += 1

    def result(self) -> np.ndarray:
        """(T, T, 3) uint8 fused texture."""
        all_mean = self.all_sum / max(self.all_w, 1e-12)
        seen_mean = self.seen_sum / np.maximum(self.seen_w, 1e-12)[..., None]
        fused = np.where(self.seen_w[..., None] > 0, seen_mean, all_mean)
        return fused.round().clip(0, 255).astype(np.uint8)


@torch.no_grad()
def crop_visibility(body: BodyModel, vertices: np.ndarray, crop_cam: np.ndarray, tex_size: int, raster: int = 64) -> np.ndarray:
    """(T, T) bool: texels of the body's UV map seen in a crop, for (V, 3) ``vertices`` (camera frame,
    metres) under the weak-perspective crop camera ``[s, tx, ty]``, rasterised at ``raster`` px."""
    v = torch.from_numpy(np.asarray(vertices, np.float32))[None]
    cam = torch.as_tensor(np.asarray(crop_cam, np.float32))[None]
    uv = (weak_perspective_project(v, cam) + 1) * raster / 2 - 0.5  # [-1, 1] crop units -> raster pixels
    frags = rasterize(torch.cat([uv, v[..., 2:] + 10.0], -1), body.faces, raster, raster, perspective=False)
    return texel_visibility(frags, body.uv, body.uv_faces, tex_size)[0].numpy()
