"""The one error family of lrpose.

The library raises these; the CLI turns any of them into one red line and exit code 1
(``--debug`` shows the traceback). Anything else escaping is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class LrposeError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""


class AssetNotFoundError(LrposeError):
    """A file lrpose needs (body model, checkpoint, detector weights) was not found.

    The message names the asset, every place searched (in order) and how to get it.
    """

    def __init__(self, what: str, searched: Sequence[str | Path], how_to_get: str) -> None:
        self.what = what
        self.searched = [str(s) for s in searched]
        self.how_to_get = how_to_get
        places = "; ".join(self.searched) if self.searched else "nowhere (no search path applies)"
        super().__init__(f"{what} not found. Searched: {places}. {how_to_get}")


class AssetFormatError(LrposeError):
    """An asset file exists but cannot be read safely (wrong format, unsafe pickle, bad keys)."""


class InputError(LrposeError):
    """Bad user input: a missing or unreadable image/video, a malformed option value."""


class ConfigError(LrposeError):
    """An invalid configuration file or option combination."""


class NonFiniteError(LrposeError):
    """A network or fit produced NaN or infinite values; nothing is written for them."""
