"""``lrpose export``: results other tools open (registered on the app of ``lrpose.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrpose.cli import ConfigOpt, GenderOpt, SmplOpt, StandinOpt, app, console, err_console, load_body_for

FormatOpt = Annotated[str, typer.Option("--format", help="glb (one animated file, every track), bvh (one per track) or glb,bvh.")]


@app.command()
def export(
    folders: Annotated[list[Path], typer.Argument(help="Results folders of lrpose video (each holds tracks/).")],
    format: FormatOpt = "glb",  # noqa: A002 - the option's name
    smpl: SmplOpt = None,
    gender: GenderOpt = None,
    standin: StandinOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Animated glTF (.glb) and BVH from finished video results, for Blender, game engines and mocap tools."""
    from rich.text import Text

    from lrpose.errors import InputError, LrposeError
    from lrpose.export_tracks import export_run, parse_formats

    formats = parse_formats(format)
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder: give the folder lrpose video wrote for one source")
    body = load_body_for(config, smpl, gender, standin)
    failed = False
    for folder in folders:
        try:
            files = export_run(folder, body, formats)
        except LrposeError as e:  # one line per folder; the others go on
            err_console.print(Text.assemble(("error: ", "bold red"), str(e)))
            failed = True
            continue
        console.print(
            f"{folder}: {', '.join(str(f) for f in files[:3])}{f' and {len(files) - 3} more' if len(files) > 3 else ''}", soft_wrap=True
        )
    if failed:
        raise typer.Exit(1)
