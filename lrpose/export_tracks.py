"""``lrpose export`` / ``lrpose video --export``: a results folder's tracks as an animated ``.glb``
(all tracks, ``<folder>/<folder name>.glb`` e.g. ``results/walk_2/walk_2.glb``, textured where ``--texture`` left
``tracks/<id>_texture.png``) and/or one ``.bvh`` per track (``<folder>/bvh/<id>.bvh``)."""

from __future__ import annotations

from pathlib import Path

from lrpose.animation import read_tracks
from lrpose.body import BodyModel
from lrpose.bvh import write_bvh
from lrpose.errors import InputError
from lrpose.files import make_folder
from lrpose.gltf import write_glb

FORMATS = ("glb", "bvh")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"glb,bvh"`` -> ("glb", "bvh"); a one-line error for anything else."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"export format must be glb, bvh or glb,bvh, not '{text}'")
    return formats


def export_run(folder: Path, body: BodyModel, formats: tuple[str, ...]) -> list[Path]:
    """Write the requested exports of one ``lrpose video`` results folder; returns the files written."""
    tracks = read_tracks(folder, body)
    written = []
    if "glb" in formats:
        path = folder / f"{folder.resolve().name}.glb"
        textures = {a.track_id: p.read_bytes() for a in tracks if (p := folder / "tracks" / f"{a.track_id:04d}_texture.png").is_file()}
        write_glb(path, body, tracks, textures)
        written.append(path)
    if "bvh" in formats:
        for old in make_folder(folder / "bvh").glob("*.bvh"):  # tracks of an earlier run
            old.unlink()
        for anim in tracks:
            path = folder / "bvh" / f"{anim.track_id:04d}.bvh"
            write_bvh(path, anim)
            written.append(path)
    return written
