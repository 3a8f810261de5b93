"""Pure-torch mesh rendering: a z-buffer rasteriser into ``Fragments`` and differentiable shading.

Rasterisation (which face covers which pixel, and where) has no gradient; everything after it
(attribute interpolation, texture sampling, shading) is differentiable w.r.t. the attributes
and textures. Runs unchanged on CPU and GPU.

Conventions: vertices come in *screen space* ``(x_px, y_px, z)`` with pixel centres at integer
coordinates (OpenCV) and ``z`` the camera depth (> 0, smaller is nearer). Pixels are sampled at
their centres. Barycentrics are perspective-correct when ``perspective=True`` (interpolating 1/z).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lrpose.geometry import perspective_project

_MAX_PAIRS = 20_000_000  # (face, pixel) candidates processed at once


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterisation result (pytorch3d-style, one face per pixel)."""

    face_index: torch.Tensor
    """(B, H, W) long, index into the faces, -1 where no face covers the pixel."""
    bary: torch.Tensor
    """(B, H, W, 3) barycentric weights of the face's 3 vertices (0 on background)."""
    depth: torch.Tensor
    """(B, H, W) depth of the nearest surface, +inf on background."""

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool, pixels covered by the mesh."""
        return self.face_index >= 0


@torch.no_grad()
def _rasterize_one(tri: torch.Tensor, height: int, width: int, perspective: bool) -> tuple[torch.Tensor, ...]:
    """tri (F, 3, 3) screen-space triangles -> face_index (H*W,), bary (H*W, 3), depth (H*W,)."""
    dev, n_pix = tri.device, height * width
    zbuf = torch.full((n_pix,), float("inf"), device=dev, dtype=tri.dtype)
    fbuf = torch.full((n_pix,), -1, device=dev, dtype=torch.long)
    bbuf = torch.zeros(n_pix, 3, device=dev, dtype=tri.dtype)
    xy = tri[..., :2]
    area = (xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1]) - (xy[:, 1, 1] - xy[:, 0, 1]) * (xy[:, 2, 0] - xy[:, 0, 0])
    x_lo = xy[..., 0].amin(1).ceil().clamp(0, width - 1)
    x_hi = xy[..., 0].amax(1).floor().clamp(-1, width - 1)
    y_lo = xy[..., 1].amin(1).ceil().clamp(0, height - 1)
    y_hi = xy[..., 1].amax(1).floor().clamp(-1, height - 1)
    bw, bh = (x_hi - x_lo + 1).clamp_min(0).long(), (y_hi - y_lo + 1).clamp_min(0).long()
    keep = (area.abs() > 1e-12) & (tri[..., 2].amin(1) > 0) & (bw > 0) & (bh > 0)
    faces = torch.nonzero(keep).squeeze(1)
    counts = bw[faces] * bh[faces]
    # chunk faces so the (face, pixel) candidate list stays bounded
    cum = torch.cumsum(counts, 0)
    total = int(cum[-1]) if cum.numel() else 0
    marks = torch.tensor(list(range(_MAX_PAIRS, total, _MAX_PAIRS)), dtype=cum.dtype, device=dev)
    cuts = (torch.searchsorted(cum, marks) + 1).tolist()
    bounds = [0, *cuts, faces.numel()]
    cand_f, cand_p, cand_z, cand_b = [], [], [], []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end <= start:
            continue
        f, c = faces[start:end], counts[start:end]
        fid = torch.repeat_interleave(f, c)
        first = torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
        off = torch.arange(fid.numel(), device=dev) - first
        px = x_lo[fid] + (off % bw[fid])
        py = y_lo[fid] + torch.div(off, bw[fid], rounding_mode="floor")
        a, b, cc = xy[fid, 0], xy[fid, 1], xy[fid, 2]
        w0 = ((b[:, 0] - px) * (cc[:, 1] - py) - (b[:, 1] - py) * (cc[:, 0] - px)) / area[fid]
        w1 = ((cc[:, 0] - px) * (a[:, 1] - py) - (cc[:, 1] - py) * (a[:, 0] - px)) / area[fid]
        w2 = 1.0 - w0 - w1
        bary = torch.stack([w0, w1, w2], 1)
        inside = (bary >= -1e-7).all(1)
        bary, fid, px, py = bary[inside], fid[inside], px[inside], py[inside]
        z = tri[fid, :, 2]
        if perspective:
            inv = bary / z
            depth = 1.0 / inv.sum(1)
            bary = inv * depth[:, None]
        else:
            depth = (bary * z).sum(1)
        cand_f.append(fid)
        cand_p.append((py * width + px).long())
        cand_z.append(depth)
        cand_b.append(bary)
    if cand_f:
        fid, pix, depth, bary = (torch.cat(x) for x in (cand_f, cand_p, cand_z, cand_b))
        zbuf.scatter_reduce_(0, pix, depth, "amin")
        win = depth <= zbuf[pix]
        fbuf.scatter_reduce_(0, pix[win], fid[win], "amax")  # ties: the higher face index wins
        final = win & (fid == fbuf[pix])
        bbuf[pix[final]] = bary[final]
    zbuf[fbuf < 0] = float("inf")
    return fbuf, bbuf, zbuf


def rasterize(verts_screen: torch.Tensor, faces: torch.Tensor, height: int, width: int, perspective: bool = True) -> Fragments:
    """Rasterise (B, V, 3) screen-space vertices ``(x_px, y_px, depth)`` with (F, 3) faces into an H x W image."""
    outs = [_rasterize_one(v[faces].detach(), height, width, perspective) for v in verts_screen]
    fi, ba, de = (torch.stack([o[i] for o in outs]) for i in range(3))
    b = verts_screen.shape[0]
    return Fragments(fi.view(b, height, width), ba.view(b, height, width, 3), de.view(b, height, width))


def interpolate(fragments: Fragments, faces: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """Interpolate (B, V, C) or (V, C) per-vertex attributes -> (B, H, W, C) (zeros on background).

    ``faces`` (F, 3) index the attributes (pass UV faces with UV coordinates). Only covered
    pixels are computed. Differentiable w.r.t. ``attrs``.
    """
    b, h, w = fragments.face_index.shape
    if attrs.dim() == 2:
        attrs = attrs.expand(b, -1, -1)
    bi, pix = torch.nonzero(fragments.mask.view(b, -1), as_tuple=True)
    vidx = faces[fragments.face_index.view(b, -1)[bi, pix]]  # (P, 3)
    vals = attrs[bi[:, None], vidx]  # (P, 3, C)
    bary = fragments.bary.view(b, -1, 3)[bi, pix].to(attrs.dtype)
    out = attrs.new_zeros(b, h * w, attrs.shape[-1])
    out = out.index_put((bi, pix), (vals * bary[..., None]).sum(1))
    return out.view(b, h, w, -1)


def sample_texture(fragments: Fragments, uv: torch.Tensor, uv_faces: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
    """Texture colours (B, H, W, C) from a (B, C, Ht, Wt) UV map; uv (T, 2) in [0, 1], v up (OBJ convention).

    Bilinear ``grid_sample``; differentiable w.r.t. ``texture``. Background is 0.
    """
    uvp = interpolate(fragments, uv_faces, uv.to(texture.dtype))  # (B, H, W, 2)
    grid = torch.stack([uvp[..., 0] * 2 - 1, 1 - uvp[..., 1] * 2], -1)
    out = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
    return out * fragments.mask[..., None]


def texel_visibility(fragments: Fragments, uv: torch.Tensor, uv_faces: torch.Tensor, tex_size: int) -> torch.Tensor:
    """(B, T, T) bool: the texels of a ``tex_size`` UV map (v up) that some covered pixel samples."""
    b = fragments.face_index.shape[0]
    uvp = interpolate(fragments, uv_faces, uv)
    tx = (uvp[..., 0] * tex_size).long().clamp(0, tex_size - 1)
    ty = ((1 - uvp[..., 1]) * tex_size).long().clamp(0, tex_size - 1)
    visible = torch.zeros(b, tex_size * tex_size, dtype=torch.bool, device=uv.device)
    for i in range(b):
        m = fragments.mask[i]
        visible[i, ty[i][m] * tex_size + tx[i][m]] = True
    return visible.view(b, tex_size, tex_size)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) area-weighted unit vertex normals (counter-clockwise faces point outward)."""
    tri = verts[:, faces]  # (B, F, 3, 3)
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1).transpose(0, 1).contiguous()  # (F, B, 3)
    vn = verts.new_zeros(verts.shape[1], verts.shape[0], 3)
    for k in range(3):  # dim-0 index_add of contiguous rows: 3.5x faster than one dim-1 add on CPU
        vn = vn.index_add(0, faces[:, k], fn)
    return F.normalize(vn.transpose(0, 1), dim=-1, eps=1e-12)


def project_to_screen(
    verts: torch.Tensor, translation: torch.Tensor, focal_px: float | torch.Tensor, center_px: torch.Tensor
) -> torch.Tensor:
    """Camera-frame (B, V, 3) metres + (B, 3) translation -> (B, V, 3) screen ``(x_px, y_px, depth)``."""
    xy = perspective_project(verts, translation, focal_px, center_px)
    return torch.cat([xy, (verts[..., 2] + translation[:, None, 2])[..., None]], -1)


def pixel_normals(fragments: Fragments, verts_cam: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) unit surface normals (smooth, interpolated vertex normals), zeros on background."""
    return F.normalize(interpolate(fragments, faces, vertex_normals(verts_cam, faces)), dim=-1, eps=1e-12)


def lambert(normals: torch.Tensor, direction=(0.0, 0.0, 1.0), two_sided: bool = False) -> torch.Tensor:
    """(B, H, W) cosine term ``max(0, n . -direction)`` for (B, H, W, 3) ``normals`` and ``direction``
    (3,) the light's travel direction in the camera frame (default: a headlight). ``two_sided``: ``|n . d|``."""
    d = F.normalize(torch.as_tensor(direction, dtype=normals.dtype, device=normals.device), dim=0)
    cos = -(normals * d).sum(-1)
    return cos.abs() if two_sided else cos.clamp_min(0)


def shade(fragments: Fragments, verts_cam: torch.Tensor, faces: torch.Tensor, color: torch.Tensor, ambient: float = 0.35) -> torch.Tensor:
    """Two-sided Lambert shading with a headlight: (B, H, W, 3) in [0, 1].

    verts_cam (B, V, 3) in the camera frame (looking down +z); color (3,), (V, 3) or (B, V, 3).
    """
    light = lambert(pixel_normals(fragments, verts_cam, faces), two_sided=True)
    if color.dim() == 1:
        base = color.view(1, 1, 1, 3).to(light.dtype)
    else:
        base = interpolate(fragments, faces, color.to(light.dtype))
    return (base * (ambient + (1 - ambient) * light)[..., None]).clamp(0, 1) * fragments.mask[..., None]


MAX_OVERLAY_SIDE = 4096
"""Overlays of larger images are rendered with this longer side and scaled up (nearest neighbour)
while blending, band by band: memory stays bounded for huge photos (a 12000 x 12000 image would
otherwise need float32 frame buffers of 1.7 GB each)."""
_BAND_ROWS = 512


def overlay(image: np.ndarray, layer: np.ndarray, mask: np.ndarray, opacity: float = 0.85, in_place: bool = False) -> np.ndarray:
    """Blend a rendered (h, w, 3) uint8 ``layer`` over a uint8 RGB ``image`` (H, W, 3) where ``mask``
    (h, w) bool is set; a smaller layer (rendered at a capped size) is scaled up to the image by
    nearest neighbour, one band of rows at a time. Returns a new image, or ``image`` drawn on with ``in_place``."""
    out = image if in_place else image.copy()
    if not mask.any():
        return out
    (h, w), (lh, lw) = image.shape[:2], mask.shape
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    # the image rows/columns whose nearest layer pixel lies in the drawn region
    y_lo, y_hi = int(ys[0] * h // lh), min(h, int(-(-(ys[-1] + 1) * h // lh)))
    x_lo, x_hi = int(xs[0] * w // lw), min(w, int(-(-(xs[-1] + 1) * w // lw)))
    cols = np.minimum(((np.arange(x_lo, x_hi) + 0.5) * lw / w).astype(np.int64), lw - 1)
    for y0 in range(y_lo, y_hi, _BAND_ROWS):
        rows = np.minimum(((np.arange(y0, min(y0 + _BAND_ROWS, y_hi)) + 0.5) * lh / h).astype(np.int64), lh - 1)
        m = mask[rows[:, None], cols[None, :]]
        if not m.any():
            continue
        target = out[y0 : y0 + len(rows), x_lo:x_hi]
        blend = cv2.addWeighted(target, 1.0 - opacity, layer[rows[:, None], cols[None, :]], opacity, 0.0)
        np.copyto(target, blend, where=m[..., None])
    return out


_FACES_NP: dict[int, tuple[torch.Tensor, np.ndarray]] = {}


def _faces_np(faces: torch.Tensor) -> np.ndarray:
    """A stable numpy copy of a face tensor (so GL index buffers can be cached per mesh)."""
    hit = _FACES_NP.get(id(faces))
    if hit is None or hit[0] is not faces:
        hit = (faces, faces.numpy().astype(np.int32))
        _FACES_NP[id(faces)] = hit
    return hit[1]


def render_overlay(
    image: np.ndarray,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    trans: torch.Tensor,
    focal_px: float,
    colors: torch.Tensor | None = None,
    backend: str = "auto",
    in_place: bool = False,
) -> np.ndarray:
    """Draw meshes over a uint8 RGB image.

    vertices (N, V, 3) camera-frame metres (one mesh per person), trans (N, 3) full-frame
    translations, focal_px for a principal point at the image centre, colors (N, 3) in [0, 1]
    (default light blue). Nearest surface wins. ``backend``: 'gl' (moderngl: projection and
    clipping on the GL side, flat shading; fast), 'torch' (smooth shading), or 'auto' (gl when a
    headless GL context works, else torch). Images with a side over ``MAX_OVERLAY_SIDE`` are
    rendered at that size and scaled up while blending (bounded memory). ``in_place``: draw on
    ``image`` itself (no copy) and return it.
    """
    h, w = image.shape[:2]
    n, nv = vertices.shape[:2]
    if n == 0:
        return image if in_place else image.copy()
    if colors is None:
        colors = torch.tensor([[0.55, 0.75, 1.0]]).expand(n, 3)
    from lrpose import render_gl

    s = min(1.0, MAX_OVERLAY_SIDE / max(h, w))  # render at a capped size: same view, fewer pixels
    rh, rw = (h, w) if s == 1.0 else (max(1, round(h * s)), max(1, round(w * s)))
    focal = focal_px * rw / w
    if backend == "gl" or (backend == "auto" and render_gl.available()):
        cam = (vertices + trans[:, None, :].to(vertices.dtype)).numpy()
        layer, mask = render_gl.draw(cam, _faces_np(faces), colors.numpy(), focal, rw, rh)
        return overlay(image, layer, mask, in_place=in_place)
    center = torch.tensor([[rw / 2.0 - 0.5, rh / 2.0 - 0.5]], dtype=vertices.dtype).expand(n, 2)
    screen = project_to_screen(vertices, trans.to(vertices.dtype), focal, center).reshape(1, -1, 3)
    all_faces = torch.cat([faces + i * nv for i in range(n)])
    cam_verts = (vertices + trans[:, None, :].to(vertices.dtype)).reshape(1, -1, 3)
    vcolors = colors.to(vertices.dtype)[:, None, :].expand(n, nv, 3).reshape(1, -1, 3)
    frags = rasterize(screen, all_faces, rh, rw)
    layer = (shade(frags, cam_verts, all_faces, vcolors)[0] * 255.0).clamp(0, 255).to(torch.uint8).numpy()
    return overlay(image, layer, frags.mask[0].numpy(), in_place=in_place)
