"""Video files through PyAV (the only module importing av): streaming encode (and, with the video
pipeline, decode). Frames are (H, W, 3) uint8 RGB."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import av
import numpy as np

from lrpose.errors import InputError
from lrpose.export import current_umask


class VideoWriter:
    """H.264 (libx264, yuv420p) MP4 writer, frame by frame; the file appears atomically on ``close``.

    Width and height must be even (yuv420p). Use as a context manager; on an exception the
    partial file is removed and nothing appears at ``path``.
    """

    def __init__(self, path: Path, fps: float, width: int, height: int, crf: int = 23) -> None:
        if width % 2 or height % 2:
            raise InputError(f"video size must be even for H.264, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=int(round(fps)))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush, close and move the file into place."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.chmod(self._tmp, 0o666 & ~current_umask())
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
