"""Every exception class of the package.

Two roots, as Polygraphy keeps ``PolygraphyException`` apart from its internal errors:

* :class:`YoloV3TrtError`: a user error, something the user can fix (a malformed cfg, a truncated
  weights file, an unreadable image, a flag combination that makes no sense). The message is one
  line naming the file or option and the problem; the CLIs print it and exit with status 2.
* :class:`EnvironmentFailure`: the machine or a library failed while the request was valid (a CUDA
  error, the plugin host library out of memory). Still one line, exit status 1.

:class:`FileError` takes ``path=None`` for a problem that has no file; the message is then the
problem alone (never a made-up path).
"""
from __future__ import annotations

import os
from typing import Sequence


class YoloV3TrtError(Exception):
    """A user error: bad input or a bad request. CLIs print ``str(err)`` and exit 2."""


class EnvironmentFailure(Exception):
    """The environment or a library failed on a valid request (CUDA error, out of memory).

    Not a :class:`YoloV3TrtError`: the CLIs print ``str(err)`` as one line and exit 1.
    """


def _where(path: str | os.PathLike | None, line: int | None = None) -> str:
    if path is None:
        return ""
    return f"{os.fspath(path)}:{line}: " if line is not None else f"{os.fspath(path)}: "


class CfgError(YoloV3TrtError):
    """A Darknet cfg file that cannot be parsed or describes an invalid network."""

    def __init__(self, path: str | os.PathLike | None, problem: str, line: int | None = None):
        self.path, self.line, self.problem = path, line, problem
        super().__init__(_where(path, line) + problem)


class FileError(YoloV3TrtError):
    """A file that is missing, unreadable or has the wrong content."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path, self.problem = path, problem
        super().__init__(_where(path) + problem)


class DarknetWeightsError(FileError):
    """A Darknet ``.weights`` file that does not fit its cfg (size, header)."""


class CheckpointError(FileError):
    """A PyTorch checkpoint that is not one of ours or does not fit the model."""


class ImageReadError(FileError):
    """An image, video or camera that cannot be read."""


class DatasetError(FileError):
    """A dataset file (label file, image list, COCO JSON) whose content is invalid.

    The message names the file and, where the format has lines (YOLO labels, list files), the
    line: ``data/labels/a.txt:3: class id 7 out of range (3 names in data/classes.names)``.
    """

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None):
        YoloV3TrtError.__init__(self, _where(path, line) + problem)
        self.path, self.line, self.problem = path, line, problem


class UsageError(YoloV3TrtError):
    """A flag or argument combination that makes no sense."""


class DetectorArgumentError(YoloV3TrtError, ValueError):
    """A Detector argument outside its range (``iou=5``, ``max_det=0``, ``size=100``, a None path)."""


class DeviceError(YoloV3TrtError, ValueError):
    """A device that is misspelt, that a backend cannot use, or that is not present here."""


class TruncatedVideoError(ImageReadError):
    """A video that ended before its container's frame count (cut short or corrupt)."""

    def __init__(self, path: str | os.PathLike, frames: int, total: int):
        self.frames, self.total = frames, total
        super().__init__(path, f"video ended after {frames} of {total} frames (truncated or corrupt)")


class FileWriteError(FileError, OSError):
    """A file that cannot be written: ``path: cannot write (reason)``; also an ``OSError``
    carrying the original ``errno`` and ``strerror``."""

    def __init__(self, path: str | os.PathLike, err: OSError, problem: str | None = None):
        FileError.__init__(self, path, problem or f"cannot write ({err.strerror or err})")
        self.errno, self.strerror, self.filename = err.errno, err.strerror, os.fspath(path)

    def __str__(self) -> str:  # OSError's own __str__ would show "[Errno ...]" instead of the message
        return FileError.__str__(self)


class OutputError(FileError):
    """An output path that cannot be written, or may not be (an input, an earlier output)."""


class WeightsDownloadError(FileError):
    """Official weights that no source could deliver verified; ``failures`` is [(source, reason)]."""

    def __init__(self, name: str, problem: str, failures: Sequence[tuple[str, str]] = ()):
        super().__init__(name, problem)
        self.failures = list(failures)


class CalibrationError(FileError):
    """A calibration set that cannot be used: empty, unreadable, not images, too few images."""


class QuantizeError(FileError):
    """A model that cannot be quantized as asked (wrong input, size mismatch, unknown method)."""


class AccuracyBudgetError(QuantizeError):
    """INT8 that misses its AP50 budget with every choice of layers it may keep in higher precision.

    ``best_drop`` (AP50 points) and ``best_k`` (layers kept in higher precision) are the closest
    it came; the message names both.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, best_drop: float, best_k: int):
        super().__init__(path, problem)
        self.best_drop, self.best_k = best_drop, best_k


class TrainingError(YoloV3TrtError):
    """Training that cannot go on: a loss or gradient that is not finite (nothing of it is saved)."""


class PluginError(YoloV3TrtError):
    """The decode + NMS plugin cannot be built, loaded or compiled here."""


class EngineCompatibilityError(FileError):
    """An engine built for another TensorRT version or GPU, or changed since it was built."""


class TensorRTUnavailableError(YoloV3TrtError):
    """TensorRT or a usable GPU is missing: the ONNX is ready, the engine must be built elsewhere."""
