"""Animated glTF 2.0 binary (``.glb``) of a run's tracks: one skinned body per track.

Layout (glTF 2.0 spec; y up, metres, seconds; checked with the Khronos validator in the tests):

- one set of mesh data shared by every track: the body model's template vertices, faces, its linear-blend
  skinning weights (up to 8 influences: ``JOINTS_0/1``, ``WEIGHTS_0/1``) and its 10 shape blend
  shapes as morph targets; each track's mesh node sets the morph weights to the track's betas, so
  the skin deforms exactly as lrpose's body (the stand-in has no pose correctives; for the real
  SMPL they are left out: a few mm);
- with textures (``lrpose video --texture``): the vertices split along the body's UV seams, UVs, and
  per textured track a mesh on the same data with its own material and embedded PNG;
- per track a skeleton of 24 joint nodes named ``track<ID>/<joint>`` (rest offsets from the track's
  shape) and a skin whose inverse bind matrices are the rest joints' translations;
- one animation: per joint a rotation channel (LINEAR, quaternions), per root a translation channel
  (LINEAR) and a scale channel (STEP: 1 while the track has results, 0 before, after and in gaps,
  so a person is not shown where lrpose has nothing), key times from the video's timestamps;
- the video's camera (perspective, its focal length) at the origin looking down -z: looking through
  it shows the bodies where the overlay video draws them (people are as far away as lrpose's
  focal length puts them: ~200 m for SPIN's 5000 px at 224 px).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch

from lrpose.animation import TrackAnimation
from lrpose.body import BodyModel
from lrpose.files import atomic_write_bytes
from lrpose.geometry import rotmat_to_quaternion

FLOAT, UINT8, UINT32 = 5126, 5121, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


class _Buffer:
    """The binary chunk and its accessors, built up one array at a time."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add_bytes(self, data: bytes) -> int:
        """Append raw bytes (an embedded image) as one buffer view; returns its index."""
        while len(self.data) % 4:
            self.data.append(0)
        self.views.append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(data)})
        self.data += data
        return len(self.views) - 1

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None, bounds: bool = False) -> int:
        """Append ``array`` (rows = elements) as one accessor of ``kind`` (SCALAR, VEC3, MAT4, ...); returns its index."""
        dtype = {FLOAT: np.float32, UINT8: np.uint8, UINT32: np.uint32}[component]
        a = np.ascontiguousarray(array, dtype=dtype)
        while len(self.data) % 4:
            self.data.append(0)
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": a.nbytes}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.data += a.tobytes()
        acc = {"bufferView": len(self.views) - 1, "componentType": component, "count": int(a.shape[0]), "type": kind}
        if bounds:
            flat = a.reshape(a.shape[0], -1)
            acc["min"], acc["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _skin_influences(weights: np.ndarray, sets: int = 2) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(V, 24) skinning weights -> ``sets`` pairs of (V, 4) joint indices and weights (largest first,
    renormalised to sum 1; unused slots: joint 0, weight 0)."""
    k = 4 * sets
    order = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, order, 1)
    w = np.where(w > 1e-6, w, 0.0)
    w = w / w.sum(1, keepdims=True)
    order = np.where(w > 0, order, 0)
    return [order[:, 4 * i : 4 * i + 4] for i in range(sets)], [w[:, 4 * i : 4 * i + 4] for i in range(sets)]


def _visibility(anim: TrackAnimation, start: float) -> tuple[np.ndarray, np.ndarray]:
    """STEP key times and (K, 3) scales: 1 over each run of consecutive frames, 0 from one frame
    after a run until the next (and before the first, from the video's first result ``start``)."""
    times: list[float] = [start] if anim.times[0] > start else []
    scales: list[float] = [0.0] if times else []
    runs = np.split(np.arange(len(anim.frame_ids)), np.nonzero(np.diff(anim.frame_ids) > 1)[0] + 1)
    for run in runs:
        on, off = float(anim.times[run[0]]), float(anim.times[run[-1]]) + 1.0 / anim.fps
        if run[-1] + 1 < len(anim.times):
            off = min(off, (float(anim.times[run[-1]]) + float(anim.times[run[-1] + 1])) / 2.0)
        times += [on, off]
        scales += [1.0, 0.0]
    return np.array(times), np.repeat(np.array(scales)[:, None], 3, 1)


def _uv_split(body: BodyModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body's mesh with one vertex per (vertex, UV) pair (glTF has one UV per vertex; the body's UV
    layout has seams): (N,) source vertex of each, (N, 2) glTF UVs (origin top-left), (F, 3) faces."""
    corners = np.stack([body.faces.numpy().reshape(-1), body.uv_faces.numpy().reshape(-1)], 1)
    pairs, inverse = np.unique(corners, axis=0, return_inverse=True)
    uv = body.uv.double().numpy()[pairs[:, 1]]
    return pairs[:, 0], np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1), inverse.reshape(-1, 3)


def _primitive(buf: _Buffer, body: BodyModel, textured: bool) -> dict:
    """The body's template mesh with its skinning weights and its shape blend shapes as morph targets
    (and UVs when ``textured``, the vertices split along the UV seams)."""
    layer = body.layer
    if textured:
        src, uv, faces = _uv_split(body)
    else:
        src, uv, faces = np.arange(body.num_vertices), None, body.faces.numpy()
    template = layer.v_template.double().numpy()[src]
    joints, weights = _skin_influences(layer.lbs_weights.double().numpy()[src])
    attributes = {"POSITION": buf.add(template, "VEC3", FLOAT, ARRAY_BUFFER, bounds=True)}
    if uv is not None:
        attributes["TEXCOORD_0"] = buf.add(uv, "VEC2", FLOAT, ARRAY_BUFFER)
    for i in range(len(joints)):
        attributes[f"JOINTS_{i}"] = buf.add(joints[i], "VEC4", UINT8, ARRAY_BUFFER)
        attributes[f"WEIGHTS_{i}"] = buf.add(weights[i], "VEC4", FLOAT, ARRAY_BUFFER)
    shapedirs = layer.shapedirs.double().numpy()[src]  # (N, 3, 10)
    targets = [{"POSITION": buf.add(shapedirs[:, :, k], "VEC3", FLOAT, ARRAY_BUFFER, bounds=True)} for k in range(shapedirs.shape[2])]
    indices = buf.add(faces.reshape(-1), "SCALAR", UINT32, ELEMENT_ARRAY_BUFFER)
    return {"attributes": attributes, "indices": indices, "targets": targets}


def _materials(buf: _Buffer, textures: dict[int, bytes]) -> tuple[dict[int, int], dict]:
    """One material per textured track (its UV texture PNG embedded): track id -> material index, and
    the document's ``materials``/``textures``/``images``/``samplers``."""
    index, doc = {}, {"materials": [], "textures": [], "images": [], "samplers": [{"magFilter": 9729, "minFilter": 9729}]}
    for track_id, png in sorted(textures.items()):
        doc["images"].append({"bufferView": buf.add_bytes(png), "mimeType": "image/png"})
        doc["textures"].append({"source": len(doc["images"]) - 1, "sampler": 0})
        base = {"baseColorTexture": {"index": len(doc["textures"]) - 1}, "metallicFactor": 0.0, "roughnessFactor": 1.0}
        doc["materials"].append({"name": f"track{track_id}", "pbrMetallicRoughness": base})
        index[track_id] = len(doc["materials"]) - 1
    return index, doc if index else {}


def write_glb(path: Path, body: BodyModel, tracks: list[TrackAnimation], textures: dict[int, bytes] | None = None) -> None:
    """Write every track of one video as an animated skinned body into ``path`` (atomically);
    ``textures``: track id -> its UV texture PNG (``lrpose video --texture``), used when the body has UVs."""
    if not tracks:
        raise ValueError("no tracks to export")
    buf = _Buffer()
    textures = {k: v for k, v in (textures or {}).items() if any(a.track_id == k for a in tracks)} if body.uv is not None else {}
    primitive = _primitive(buf, body, textured=bool(textures))
    material, extra = _materials(buf, textures)
    meshes, mesh_of = [], {}
    for anim in tracks:  # every mesh shares the accessors; a textured track's has its own material
        if anim.track_id in material:
            meshes.append({"name": f"track{anim.track_id}/body", "primitives": [{**primitive, "material": material[anim.track_id]}]})
            mesh_of[anim.track_id] = len(meshes) - 1
        elif "plain" not in mesh_of:
            meshes.append({"name": "body", "primitives": [primitive]})
            mesh_of["plain"] = len(meshes) - 1
    nodes: list[dict] = []
    skins: list[dict] = []
    channels: list[dict] = []
    samplers: list[dict] = []
    scene_roots: list[int] = []
    start = min(float(a.times[0]) for a in tracks)

    def animate(node: int, path_: str, times: np.ndarray, values: np.ndarray, kind: str, interpolation: str = "LINEAR") -> None:
        inp = buf.add(times, "SCALAR", FLOAT, bounds=True)
        samplers.append({"input": inp, "output": buf.add(values, kind, FLOAT), "interpolation": interpolation})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": node, "path": path_}})

    for anim in tracks:
        first = len(nodes)
        quats = rotmat_to_quaternion(torch.from_numpy(anim.local_rotations)).numpy()[..., [1, 2, 3, 0]]  # glTF: x, y, z, w
        quats = _continuous(quats)
        for j, (name, parent) in enumerate(zip(anim.names, anim.parents, strict=True)):
            offset = anim.rest_joints[j] - (anim.rest_joints[parent] if parent >= 0 else 0.0)
            node = {"name": f"track{anim.track_id}/{name}", "translation": offset.tolist(), "rotation": quats[0, j].tolist()}
            if parent >= 0:
                nodes[first + parent].setdefault("children", []).append(first + j)
            else:
                node["translation"] = anim.root_positions[0].tolist()
            nodes.append(node)
            animate(first + j, "rotation", anim.times, quats[:, j], "VEC4")
        animate(first, "translation", anim.times, anim.root_positions, "VEC3")
        vis_t, vis_s = _visibility(anim, start)
        animate(first, "scale", vis_t, vis_s, "VEC3", "STEP")
        ibm = np.tile(np.eye(4), (24, 1, 1))
        ibm[:, :3, 3] = -anim.rest_joints  # bind pose: the unposed body at the origin
        skins.append({"name": f"track{anim.track_id}", "joints": list(range(first, first + 24)), "skeleton": first,
                      "inverseBindMatrices": buf.add(ibm.transpose(0, 2, 1).reshape(24, 16), "MAT4", FLOAT)})  # fmt: skip
        mesh = mesh_of.get(anim.track_id, mesh_of.get("plain"))
        nodes.append({"name": f"track{anim.track_id}/body", "mesh": mesh, "skin": len(skins) - 1, "weights": anim.betas.tolist()})
        nodes.append({"name": f"track{anim.track_id}", "children": [first]})  # a group per skeleton: Blender makes one armature each
        scene_roots += [len(nodes) - 2, len(nodes) - 1]  # the skinned mesh stays a root node (glTF ignores its parents)
    if tracks[0].camera is not None:  # the video's camera at the origin, looking down -z: the view of the overlay
        extra["cameras"] = [_camera(tracks)]
        nodes.append({"name": "video camera", "camera": 0})
        scene_roots.append(len(nodes) - 1)
    doc = {
        "asset": {"version": "2.0", "generator": "lrpose"},
        "scene": 0,
        "scenes": [{"name": "lrpose", "nodes": scene_roots}],
        "nodes": nodes,
        "meshes": meshes,
        "skins": skins,
        "animations": [{"name": "tracks", "samplers": samplers, "channels": channels}],
        "buffers": [{"byteLength": len(buf.data)}],
        "bufferViews": buf.views,
        "accessors": buf.accessors,
        **extra,
    }
    atomic_write_bytes(Path(path), _glb(doc, bytes(buf.data)))


def _camera(tracks: list[TrackAnimation]) -> dict:
    """The glTF perspective camera of the video (its focal length and aspect), far enough for every body."""
    focal, w, h = tracks[0].camera
    far = max(1000.0, 2.0 * max(float(-a.root_positions[:, 2].min()) for a in tracks))
    yfov = 2.0 * math.atan(h / 2.0 / focal)
    return {"type": "perspective", "name": "video camera", "perspective": {"yfov": yfov, "aspectRatio": w / h, "znear": 0.1, "zfar": far}}


def _continuous(q: np.ndarray) -> np.ndarray:
    """(T, J, 4) quaternions with signs flipped so consecutive keys are on the same hemisphere (LINEAR
    interpolation of glTF then takes the short way)."""
    q = q.copy()
    for t in range(1, len(q)):
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t, flip] *= -1
    return q


def _glb(doc: dict, binary: bytes) -> bytes:
    """The GLB container: header, JSON chunk (space padded), BIN chunk (zero padded)."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )
