"""Exceptions for user errors.

Every problem a user can cause (a malformed cfg, a truncated weights file, an unreadable image)
raises a subclass of :class:`YoloV3TrtError` whose message is one line naming the file and the
problem. The command-line tools print that line and exit with status 2, without a traceback.
"""
from __future__ import annotations

import os


class YoloV3TrtError(Exception):
    """A user error: bad input or a bad request. CLIs print ``str(err)`` and exit 2."""


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

    def __init__(self, path: str | os.PathLike, problem: str):
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
