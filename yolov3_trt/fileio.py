"""Atomic file output: a reader never sees a half-written file.

Everything the tools write goes to a temporary file in the destination folder and is renamed
over the destination only when complete (``os.replace`` is atomic on POSIX and Windows). A
destination that cannot be written (a file where a folder should be, no permission, a folder
where the file should be, a full disk) raises :class:`FileWriteError`: one line naming the path,
and still an ``OSError`` for callers that handle those. Tools check their outputs before they
start (``yolov3_trt.cli.outputs``); this is the net under those checks.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import FileError, FileWriteError



@functools.lru_cache(maxsize=1)
def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the umask."""
    umask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


_file_mode = file_mode  # the earlier private name


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to ``path``'s own suffix, so tools that pick a format from the file
    name (OpenCV's writers) see the right one. On an exception the temporary file is removed.
    Raises :class:`FileWriteError` when the folder cannot be created or written, or ``path`` is
    a folder.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix,
                                   dir=path.parent)
    except (FileExistsError, NotADirectoryError) as err:
        raise FileWriteError(path, err, "cannot write: a file is in the way of its folder "
                                        f"{path.parent}") from None
    except OSError as err:
        raise FileWriteError(path, err) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, file_mode())  # mkstemp makes 0o600; the result should look like any other file
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except IsADirectoryError as err:
            raise FileWriteError(path, err, "cannot write: a folder of that name is in the way") from None
        except OSError as err:
            raise FileWriteError(path, err) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:  # a full disk
            raise FileWriteError(path, err) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """The project's user cache: ``$YOLOV3_TRT_CACHE``, or ``~/.cache/yolov3_trt`` (PTX, ONNX exports, weights)."""
    return Path(os.environ.get("YOLOV3_TRT_CACHE") or Path.home() / ".cache" / "yolov3_trt")
