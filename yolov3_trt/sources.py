"""Inputs and annotated outputs of ``detect``: images, a folder, a video file, a stream or a camera.

:func:`open_source` turns the ``SOURCE`` argument into a :class:`Source` that yields
:class:`Frame` objects (BGR uint8, OpenCV's convention); :class:`AnnotatedOutput` writes the
drawn frames back out: one ``<name>.jpg`` per image, or one ``<stem>.mp4`` per video, stream or camera.

How ``SOURCE`` is read, in order:

1. a string of digits that is not an existing path is a camera index (``"0"``);
2. a URL (``scheme://...``): ``file://`` names a local path (then read as below); any other
   scheme (``rtsp://``, ``http(s)://``, ``rtmp://``, ``udp://`` ...) is a network stream opened
   with OpenCV's FFmpeg ``VideoCapture`` (:class:`StreamSource`), never turned into a path;
3. a missing path is an error;
4. a folder yields its images (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted by
   file name, not recursing; hidden files (``.*``, e.g. macOS ``._x.jpg``) are ignored;
5. a file with an image extension is one image;
6. any other file is opened as a video with ``cv2.VideoCapture``.

An image that cannot be decoded stops iteration with :class:`ImageReadError` naming it, because
a silently shorter result set is worse than a clear failure; pass ``skip_unreadable=True`` to
log a warning and go on instead. A camera or live stream ends at the first frame it cannot
deliver. A video file (or a stream that reports a frame count) that ends before its container's
frame count is truncated or corrupt: :class:`TruncatedVideoError` after the frames it did give,
unless ``tolerate_truncated=True``, which logs a warning instead. (OpenCV's count is exact for
the usual containers; for a variable-frame-rate file whose container has no count it is an
estimate, and such a file may need ``tolerate_truncated``.)

Sources are single-threaded objects; use each from one thread.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Iterator

import cv2
import numpy as np

from yolov3_trt.errors import FileError, ImageReadError, TruncatedVideoError
from yolov3_trt.fileio import atomic_path, atomic_write_bytes
from yolov3_trt.preprocess import read_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
_DEFAULT_VIDEO_FPS = 30.0  # for writing when the source reports none (many cameras, some files)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
STREAM_TIMEOUT_MS = 10_000  # opening and reading a network stream: fail rather than hang



@dataclass(frozen=True, eq=False)
class Frame:
    """One input image: ``name`` for output files and JSON, ``index`` from 0, ``image`` BGR uint8."""

    name: str
    index: int
    image: np.ndarray = field(repr=False)


class Source(ABC):
    """Frames from one input, as a context manager that releases it.

    Attributes:
        kind: ``"images"``, ``"video"`` or ``"camera"``.
        stem: the name of the input as a whole (video file stem, ``camera0``, folder name).
        total: how many frames iteration will yield, when known (for progress bars); a video's
            count comes from its container and may be approximate.
        fps: frames per second of a video or camera, when it reports one; ``None`` for images.
    """

    kind: str
    stem: str
    total: int | None
    fps: float | None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yield the frames in order."""

    def close(self) -> None:
        """Release the underlying capture; idempotent."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ImageSource(Source):
    """Image files, read lazily one at a time. Can be iterated more than once."""

    kind = "images"
    fps = None

    def __init__(self, paths: list[Path], stem: str, *, skip_unreadable: bool = False):
        self.paths = list(paths)
        self.stem = stem
        self.total = len(self.paths)
        self.skip_unreadable = skip_unreadable
        self.names = _frame_names(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, (path, name) in enumerate(zip(self.paths, self.names)):
            try:
                image = read_image(path)
            except ImageReadError as err:
                if not self.skip_unreadable:
                    raise
                logger.warning("skipping %s", err)
                continue
            yield Frame(name=name, index=index, image=image)


def _frame_names(paths: list[Path]) -> list[str]:
    """File stems, except that stems shared by several files (``a.jpg``, ``a.png``) keep their
    extension (``a_jpg``, ``a_png``) so their outputs do not overwrite each other."""
    counts = Counter(p.stem for p in paths)
    return [f"{p.stem}_{p.suffix[1:]}" if counts[p.stem] > 1 else p.stem for p in paths]


class _CaptureSource(Source):
    """Frames from a ``cv2.VideoCapture``, read as they are iterated: a stream, iterated once."""

    def __init__(self, capture: cv2.VideoCapture, stem: str, total: int | None,
                 max_frames: int | None = None, tolerate_truncated: bool = False, label: str | None = None):
        self._capture: cv2.VideoCapture | None = capture
        self.stem = stem
        self.label = label or stem  # how messages name this input
        self.max_frames = max_frames
        self.tolerate_truncated = tolerate_truncated
        self._expected = total  # the container's count, before max_frames
        if max_frames is not None:
            total = max_frames if total is None else min(total, max_frames)
        self.total = total
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        self._started = False

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"{self.kind} source {self.stem} is a stream and can be iterated only once")
        if self._capture is None:
            raise RuntimeError(f"{self.kind} source {self.stem} is closed")
        self._started = True
        index = 0
        while self._capture is not None and (self.max_frames is None or index < self.max_frames):
            ok, image = self._capture.read()
            if not ok or image is None:
                break  # end of file, or a camera that stopped delivering
            yield Frame(name=f"{self.stem}_{index:06d}", index=index, image=image)
            index += 1
        if self.total is not None and index < self.total and self._capture is not None:
            error = TruncatedVideoError(self.label, index, self._expected or self.total)
            if not self.tolerate_truncated:
                raise error
            logger.warning("%s; kept the frames read", error)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoSource(_CaptureSource):
    """Frames of a video file, named ``<video stem>_<index:06d>``."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, *, max_frames: int | None = None, tolerate_truncated: bool = False):
        self.path = Path(path)
        capture = cv2.VideoCapture(os.fspath(self.path))
        if not capture.isOpened():
            capture.release()
            raise ImageReadError(self.path, "cannot open as a video (not an image extension "
                                 f"{_extension_list()}, and OpenCV cannot decode it as video)")
        super().__init__(capture, self.path.stem, _frame_count(capture), max_frames, tolerate_truncated,
                         os.fspath(self.path))


def _frame_count(capture: cv2.VideoCapture) -> int | None:
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if math.isfinite(count) and count > 0 else None


def redact_url(url: str) -> str:
    """``url`` without a password (``rtsp://user:secret@host`` -> ``rtsp://user:***@host``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class StreamSource(_CaptureSource):
    """Frames of a network stream (RTSP, HTTP, ...) through OpenCV's FFmpeg backend, named
    ``<stem>_<index:06d>``, where the stem is the URL's last path part (or its host), reduced to
    file-name characters. A live stream runs until it stops delivering (or ``max_frames``);
    opening and each read give up after :data:`STREAM_TIMEOUT_MS`."""

    kind = "stream"

    def __init__(self, url: str, *, max_frames: int | None = None, tolerate_truncated: bool = False):
        self.url = url
        self.name = stream_name(url)
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS])
        if not capture.isOpened():
            capture.release()
            raise ImageReadError(redact_url(url), "cannot open the stream (unreachable, refused, timed out after "
                                 f"{STREAM_TIMEOUT_MS // 1000} s, or a protocol OpenCV's FFmpeg does not read)")
        super().__init__(capture, Path(self.name).stem or "stream", _frame_count(capture), max_frames,
                         tolerate_truncated, redact_url(url))


def stream_name(url: str) -> str:
    """A file-name-safe name for a stream URL: its last path part, else its host."""
    parts = urllib.parse.urlsplit(url)
    name = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or parts.hostname or "stream"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "stream"


def is_url(text: str) -> bool:
    """Whether ``SOURCE`` is a URL (``scheme://``) rather than a path."""
    return bool(_URL.match(text))


class CameraSource(_CaptureSource):
    """Frames of a camera, named ``camera<index>_<frame:06d>``; endless unless ``max_frames``."""

    kind = "camera"

    def __init__(self, index: int, *, max_frames: int | None = None):
        self.index = index
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise ImageReadError(f"camera {index}", "cannot open camera (not connected, busy, "
                                 "or no permission)")
        super().__init__(capture, f"camera{index}", None, max_frames)


def _extension_list() -> str:
    return "/".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; hidden files are left out."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise FileError(folder, f"cannot list folder ({err.strerror or err})") from None
    images = [p for p in entries
              if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    return sorted(images, key=lambda p: p.name)


def open_source(source: str | os.PathLike, *, max_frames: int | None = None,
                skip_unreadable: bool = False, tolerate_truncated: bool = False) -> Source:
    """Open ``SOURCE``: an image file, a folder of images, a video file, a camera index or a
    stream URL.

    Args:
        source: see the module docstring for how it is interpreted.
        max_frames: stop a video, stream or camera after this many frames (ignored for images).
        skip_unreadable: for images, log and skip files that cannot be decoded instead of
            raising :class:`ImageReadError`.
        tolerate_truncated: a video that ends before its frame count logs a warning instead of
            raising :class:`TruncatedVideoError`.

    Raises:
        FileError: the path does not exist, or a folder holds no images.
        ImageReadError: a video, stream or camera cannot be opened.
    """
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    text = os.fspath(source)
    if isinstance(source, str) and is_url(text):
        parts = urllib.parse.urlsplit(text)
        if parts.scheme.lower() != "file":
            return StreamSource(text, max_frames=max_frames, tolerate_truncated=tolerate_truncated)
        if parts.netloc not in ("", "localhost"):
            raise FileError(text, "a file:// URL names a file on this machine (file:///path)")
        text = urllib.request.url2pathname(parts.path)
    path = Path(text)
    if text.isdigit() and not path.exists():
        return CameraSource(int(text), max_frames=max_frames)
    if not path.exists():
        raise FileError(path, "no such file or folder (nor a camera index)")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise FileError(path, f"no images ({_extension_list()}) in folder")
        return ImageSource(images, path.resolve().name, skip_unreadable=skip_unreadable)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource([path], path.stem, skip_unreadable=skip_unreadable)
    return VideoSource(path, max_frames=max_frames, tolerate_truncated=tolerate_truncated)


class AnnotatedOutput:
    """Writes annotated frames of one source into ``folder``, every file atomically.

    Images become ``folder/<frame name>.jpg``, each written whole as it comes. A video or
    camera becomes one ``folder/<stem>.mp4`` (``mp4v``): it is written to a temporary file
    beside the target and renamed only when the ``with`` block ends without an exception, so an
    interrupted run leaves the temporary file removed and no half-written video. (A camera
    loop that should keep its recording on Ctrl-C must therefore catch ``KeyboardInterrupt``
    inside the block and leave it normally.) No frames written means no video file.

    Example::

        with open_source(src) as source, AnnotatedOutput(out_dir, source) as output:
            for frame in source:
                output.write(frame, draw_detections(frame.image, detector.detect(frame.image)))
    """

    def __init__(self, folder: str | os.PathLike, source: Source, *, fps: float | None = None,
                 jpeg_quality: int = 95):
        self.folder = Path(folder)
        self.kind = source.kind
        self.stem = source.stem
        self.fps = fps or source.fps or _DEFAULT_VIDEO_FPS
        self.jpeg_quality = jpeg_quality
        self.paths: list[Path] = []  # files completed so far
        self._stack = contextlib.ExitStack()
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    @property
    def video_path(self) -> Path:
        """Where a video or camera source's output goes."""
        return self.folder / f"{self.stem}.mp4"

    def write(self, frame: Frame, image: np.ndarray) -> None:
        """Write ``image`` (BGR uint8, the annotated ``frame``) to the output."""
        if self.kind == "images":
            self._write_image(self.folder / f"{frame.name}.jpg", image)
        else:
            self._write_video_frame(image)

    def _write_image(self, path: Path, image: np.ndarray) -> None:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise FileError(path, "cannot encode image as JPEG")
        atomic_write_bytes(path, data.tobytes())
        self.paths.append(path)

    def _write_video_frame(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            self._open_writer(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"{self.video_path}: frame size {w}x{h} differs from the first "
                             f"frame's {self._size[0]}x{self._size[1]}")
        self._writer.write(image)

    def _open_writer(self, width: int, height: int) -> None:
        # Opened on the first frame: the writer needs the frame size, and a stream that yields
        # nothing then leaves no empty file behind.
        tmp = self._stack.enter_context(atomic_path(self.video_path))
        writer = cv2.VideoWriter(os.fspath(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                 (width, height))
        if not writer.isOpened():
            raise FileError(self.video_path, "cannot open a video writer (mp4v codec unavailable?)")
        # Pushed after atomic_path, so it runs first: the file is complete before it is renamed.
        self._stack.callback(writer.release)
        self._writer, self._size = writer, (width, height)

    def close(self, exc: BaseException | None = None) -> None:
        """Finish the video: renamed into place when ``exc`` is None, else deleted."""
        completed = self._writer is not None and exc is None
        self._writer = None
        if exc is None:
            self._stack.close()
        else:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
        if completed:
            self.paths.append(self.video_path)

    def __enter__(self) -> AnnotatedOutput:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exc)
