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

from .errors import FileWriteError


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give now: 0o666 less the process umask.

    The umask is read without being set (setting it, even briefly, would change the mode of
    files other threads create meanwhile): on Linux from ``/proc/self/status`` (``Umask:``),
    read on every call; elsewhere from the mode of a probe file, measured once per process.
    """
    umask = _proc_umask()
    return 0o666 & ~(umask if umask is not None else _probed_umask())


def _proc_umask() -> int | None:
    """The umask from ``/proc/self/status`` (Linux >= 4.7), or None where it is not there."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


@functools.lru_cache(maxsize=1)
def _probed_umask() -> int:
    """The umask as the mode bits a new 0o666 file lacks (a probe file in the temp folder); 0o022
    when no file can be made there."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".umask-probe.")
    except OSError:
        return 0o022
    os.close(fd)
    try:
        os.unlink(probe)
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        os.close(fd)
        return 0o666 & ~os.stat(probe).st_mode & 0o777
    except OSError:
        return 0o022
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


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
