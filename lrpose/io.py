"""Media through PyAV (the only module importing av): streaming decode of a video, a folder of
images or one image into ``Frame`` objects, and streaming H.264 encode. Frames are (H, W, 3)
uint8 RGB. Nothing is ever loaded whole."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from lrpose.errors import InputError
from lrpose.files import current_umask, make_folder, output_error
from lrpose.types import Frame

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class FrameSource:
    """Frames of one input, decoded lazily: ``for frame in source``.

    A video file (any container/codec FFmpeg reads; the display-matrix rotation is applied; times
    come from the container's timestamps, so variable frame rate is kept in ``Frame.time_s``), a
    folder of images (sorted by name, ``fps`` frames per second) or a single image. Opening checks
    the input and raises InputError with one clear line; a decode error in the middle of a video,
    or an image of another size than the folder's first, ends the iteration and is kept in
    ``error`` (the frames before it stay valid).
    """

    def __init__(self, path: Path, folder_fps: float = 25.0) -> None:
        self.path = Path(path)
        self.error: str | None = None
        self._images: list[Path] | None = None
        self._declared = 0
        if not self.path.exists():
            raise InputError(f"{self.path} does not exist")
        if self.path.is_dir():
            self._images = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise InputError(f"{self.path} is a folder without images ({', '.join(IMAGE_SUFFIXES)})")
            first = read_image(self._images[0])
            self.fps, self.frame_count = float(folder_fps), len(self._images)
        elif self.path.suffix.lower() in IMAGE_SUFFIXES:
            self._images = [self.path]
            first = read_image(self.path)
            self.fps, self.frame_count = float(folder_fps), 1
        else:
            first = self._probe_video()
        self.height, self.width = first.shape[:2]

    def _probe_video(self) -> np.ndarray:
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path} is empty (0 bytes)")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise InputError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else 25.0
                self._declared = int(stream.frames)  # exact count from the container index, 0 if unknown
                self.frame_count = self._declared or (
                    int(round(float(stream.duration * stream.time_base) * self.fps)) if stream.duration else 0
                )
                first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise InputError(f"{self.path} is not a video FFmpeg can read ({_reason(e)})") from None
        if first is None:
            raise InputError(f"{self.path} contains no decodable video frames")
        return _to_rgb(first)

    def __iter__(self) -> Iterator[Frame]:
        if self._images is not None:
            for i, p in enumerate(self._images):
                image = read_image(p)
                if image.shape[:2] != (self.height, self.width):  # one track must not mix two coordinate systems
                    self.error = (f"{p}: frame {i} is {image.shape[1]}x{image.shape[0]} but the folder's first frame is "
                                  f"{self.width}x{self.height}; stopped there (one folder, one frame size)")  # fmt: skip
                    return
                yield Frame(i, image, i / self.fps)
            return
        index = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    t = float(frame.time) if frame.time is not None else index / self.fps
                    yield Frame(index, _to_rgb(frame), t)
                    index += 1
        except av.error.FFmpegError as e:
            self.error = f"{self.path}: decoding stopped after frame {index} ({_reason(e)}); the file looks truncated or damaged"
            return
        if index < self._declared:
            self.error = f"{self.path}: only {index} of its {self._declared} frames could be decoded; the file looks truncated"


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or type(e).__name__


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    k = int(round(frame.rotation / 90.0)) % 4  # display matrix: counter-clockwise degrees
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file; InputError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path} is not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second copy of a huge photo


class VideoWriter:
    """H.264 (libx264, yuv420p) MP4 writer, frame by frame; the file appears atomically on ``close``.

    Width and height must be even (yuv420p). Use as a context manager; on an exception the
    partial file is removed and nothing appears at ``path``.
    """

    def __init__(self, path: Path, fps: float, width: int, height: int, crf: int = 23) -> None:
        if width % 2 or height % 2:
            raise InputError(f"video size must be even for H.264, got {width}x{height}")
        self.path = Path(path)
        make_folder(self.path.parent)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".mp4", dir=self.path.parent)
            os.close(fd)
        except OSError as e:
            raise output_error(self.path, e) from None
        self._tmp = Path(tmp)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
        except (OSError, av.error.FFmpegError) as e:
            self._tmp.unlink(missing_ok=True)
            raise self._error(e) from None
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as e:
            raise self._error(e) from None
        self.frames += 1

    def close(self) -> None:
        """Flush, close and move the file into place (InputError, and no file, on an output fault)."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.chmod(self._tmp, 0o666 & ~current_umask())
            os.replace(self._tmp, self.path)
        except (OSError, av.error.FFmpegError) as e:
            self._tmp.unlink(missing_ok=True)
            raise self._error(e) from None

    def _error(self, e: Exception) -> InputError:
        return output_error(self.path, e) if isinstance(e, OSError) else InputError(f"cannot write {self.path}: {e}")

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            with contextlib.suppress(OSError, av.error.FFmpegError):
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
