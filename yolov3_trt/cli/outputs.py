"""Output paths, checked before a tool starts work, and the one ``--force`` flag.

The rules every tool follows (README, "Outputs"):

- a tool never writes over one of its own inputs, ``--force`` or not (paths are compared after
  resolving links, and with ``os.path.samefile`` when both exist);
- an existing output file is replaced only with ``--force``, and the tool says so;
- every output is checked before the work starts: the right kind (file or folder), a folder
  that exists or can be created, and writable (probed by creating and removing a file there,
  which is the only test that holds for root, ACLs and read-only mounts alike); a problem is
  one :class:`OutputError` line, exit 2;
- what a tool writes appears whole or not at all: :class:`StagedFiles` writes several files
  beside their targets and renames them into place only when all are complete;
  :class:`ResultFolder` does the same for a folder of results (``detect``), and with
  ``--force`` also removes the earlier run's files that the new run does not rewrite, so old and
  new results never mix.
"""
from __future__ import annotations

import abc
import argparse
import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Iterable, Sequence

from ..errors import OutputError
from ..fileio import file_mode

logger = logging.getLogger(__name__)

FORCE = "--force"
MANIFEST = ".yolov3_trt-run.json"  # in a ResultFolder: the files the last run wrote
_STAGING_PREFIX = ".yolov3_trt-staging-"

PathLike = str | os.PathLike



def add_force_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, aliases: Sequence[str] = (),
                  help: str | None = None) -> None:
    """Add ``--force`` (``args.force``): replace earlier outputs; never an input."""
    from .flags import add_flag

    add_flag(parser, FORCE, aliases=tuple(aliases), help=help, dest="force")


def absolute(path: PathLike) -> Path:
    """``path`` made absolute with links resolved where they exist (``~`` expanded)."""
    return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file: ``samefile`` when both exist (hard links
    included), else the resolved paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return absolute(a) == absolute(b)


def existing_inputs(*paths: PathLike | None) -> list[Path]:
    """The ``paths`` that name existing files or folders (``None`` and names such as a
    built-in cfg ``yolov3`` are left out), for the ``inputs`` of the checks."""
    return [Path(p) for p in paths if p is not None and os.path.exists(os.path.expanduser(os.fspath(p)))]


def model_inputs(args: argparse.Namespace) -> list[Path]:
    """The existing files among a tool's model flags (--model and its engine sidecar, --cfg,
    --weights, --checkpoint, --names): what an output must never replace."""
    paths = [getattr(args, name, None) for name in ("model", "cfg", "weights", "checkpoint", "names")]
    model = getattr(args, "model", None)
    if model and Path(model).suffix.lower() in (".engine", ".plan"):
        paths.append(f"{model}.json")
    return existing_inputs(*(p for p in paths if isinstance(p, (str, os.PathLike))))


def dataset_inputs(path: PathLike | None, names: PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """(input files, input folders) of a dataset argument: a YOLO folder is read throughout
    (images, mirrored labels, names), so it is an input folder; a COCO JSON or list file is an
    input file, and so is the names file found beside it."""
    if path is None or not os.path.exists(path):
        return existing_inputs(names), []
    path = Path(path)
    if path.is_dir():
        return existing_inputs(names), [path]
    return existing_inputs(path, names, *sorted(path.parent.glob("*.names"))), []


def _is_input(path: Path, inputs: Iterable[PathLike]) -> PathLike | None:
    for item in inputs:
        if same_file(path, item):
            return item
    return None


def check_not_input(path: PathLike, inputs: Iterable[PathLike], *, option: str = "--output") -> Path:
    """OutputError when ``path`` is one of ``inputs`` (nothing is ever written over an input)."""
    clash = _is_input(Path(path), inputs)
    if clash is not None:
        raise OutputError(path, f"is an input of this run{_same_as(path, clash)}; choose another {option} "
                                "(nothing is ever written over an input)")
    return Path(path)


def _same_as(path: PathLike, clash: PathLike) -> str:
    return "" if os.fspath(path) == os.fspath(clash) else f" (the same file as {clash})"


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists (a broken link counts as existing)."""
    folder = Path(os.path.abspath(os.path.expanduser(folder)))
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _probe_writable(folder: Path, option: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".yolov3_trt-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(folder, f"cannot write in this folder ({err.strerror or err}); choose another "
                                  f"{option}") from None


def check_writable_folder(folder: PathLike, *, option: str = "--output", for_file: PathLike | None = None) -> Path:
    """``folder`` is a folder, or can be created (its closest existing ancestor is a writable
    folder), and files can be created in it. Creates nothing. Returns ``Path(folder)``.
    ``for_file``: the output file in ``folder`` that messages name instead of the folder."""
    folder = Path(folder)
    anchor = _nearest_existing(folder)
    if not anchor.is_dir():
        what = "a broken link" if os.path.islink(anchor) else "a file"
        if for_file is not None:
            raise OutputError(for_file, f"cannot be written: {anchor} is {what}, not a folder ({option})")
        if anchor == Path(os.path.abspath(folder)):
            raise OutputError(folder, f"is {what}, not a folder ({option} needs a folder)")
        raise OutputError(folder, f"cannot create this folder: {anchor} is {what} ({option})")
    _probe_writable(anchor, option)
    return folder


def check_output_folder(folder: PathLike, *, inputs: Iterable[PathLike] = (), option: str = "--output") -> Path:
    """An output folder: :func:`check_writable_folder`, and not one of the input files.

    An output folder may hold inputs (``detect photos/ --output photos/``); which files in it
    may be replaced is the caller's decision (:class:`ResultFolder`)."""
    folder = Path(folder)
    clash = _is_input(folder, inputs)
    if clash is not None and not Path(clash).is_dir():
        raise OutputError(folder, f"is an input file of this run{_same_as(folder, clash)}; {option} needs a folder")
    return check_writable_folder(folder, option=option)


def check_output_file(path: PathLike, *, inputs: Iterable[PathLike] = (), force: bool = False,
                      option: str = "--output", input_folders: Iterable[PathLike] = ()) -> Path:
    """An output file, before any work: not a folder, not one of ``inputs`` nor anywhere inside
    one of ``input_folders`` (a dataset folder, whose every file may be read), its folder exists
    or can be created and is writable, and an existing file only with ``force`` (logged).

    Returns ``Path(path)``. Raises :class:`OutputError` naming the path and ``option``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, f"is a folder; {option} needs a file name")
    check_not_input(path, inputs, option=option)
    for folder in input_folders:
        if absolute(folder) in absolute(path).parents:
            raise OutputError(path, f"is inside {folder}, an input of this run; choose another {option} "
                                    "(nothing is ever written among the inputs)")
    if path.name in ("", ".", ".."):
        raise OutputError(path, f"is not a file name ({option})")
    check_writable_folder(path.parent, option=option, for_file=path)
    if os.path.lexists(path):
        if not force:
            raise OutputError(path, f"exists; pass {FORCE} to replace it, or choose another {option}")
        logger.info("replacing %s (%s)", path, FORCE)
    return path


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created, outermost first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    missing.reverse()
    for item in missing:
        item.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: Sequence[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


class _AllOrNothing(abc.ABC):
    """Leaving the block commits (``commit``); an exception, in the block or in the commit,
    discards what was staged (``_discard``)."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Move everything staged into place."""

    @abc.abstractmethod
    def _discard(self) -> None:
        """Remove everything staged."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.commit()
                return
            except BaseException:
                self._discard()
                raise
        self._discard()


class StagedFiles(_AllOrNothing):
    """Several output files that appear together: ``staged[path]`` is a temporary file beside
    ``path`` to write; when the ``with`` block ends normally each is renamed onto its path, on an
    exception all are removed (with any folder this created). Check the paths first
    (:func:`check_output_file`).

    Example::

        with StagedFiles([json_path, plot_path]) as staged:
            plot(curves, staged[plot_path])
            atomic_write_json(staged[json_path], report)
    """

    def __init__(self, paths: Iterable[PathLike]):
        self.paths = [Path(p) for p in paths]
        self._tmp: dict[Path, Path] = {}
        self._created: list[Path] = []

    def __getitem__(self, path: PathLike) -> Path:
        return self._tmp[Path(path)]

    def __enter__(self) -> StagedFiles:
        try:
            for path in self.paths:
                self._created += _make_parents(path.parent)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
                os.close(fd)
                self._tmp[path] = Path(tmp)
        except BaseException:
            self._discard()
            raise
        return self

    def _discard(self) -> None:
        for tmp in self._tmp.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        _remove_empty(self._created)

    def commit(self) -> None:
        """Rename every temporary file onto its path (the files' mode: a plain ``open``'s)."""
        for path, tmp in self._tmp.items():
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        self._tmp.clear()



def _earlier_files(folder: Path) -> list[str]:
    """The files the last run listed in ``folder``'s manifest (plain names only)."""
    try:
        listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in listed if isinstance(n, str) and n and "/" not in n and "\\" not in n
            and n not in (".", "..", MANIFEST) and os.path.lexists(folder / n)]


class ResultFolder(_AllOrNothing):
    """One run's result files, written flat into ``folder``, all appearing together.

    ``planned`` are the file names the run may write. :meth:`check` (before the work) refuses,
    with :class:`OutputError`: a file where the folder should be, a folder that cannot be
    created or written, a planned file that would replace an input (never allowed), and, without
    ``force``, a folder holding an earlier run's results (its manifest :data:`MANIFEST`, or a
    planned name that exists). The block writes into :attr:`staging`, a hidden folder inside
    ``folder`` (or beside it when ``folder`` is new); on success the files are moved in, the
    earlier run's files this run did not rewrite are removed, and the manifest lists the new
    files; on an exception the staging folder is deleted and ``folder`` is as it was.
    """

    def __init__(self, folder: PathLike, planned: Iterable[str], *, tool: str, inputs: Iterable[PathLike] = (),
                 force: bool = False, option: str = "--output"):
        self.folder = Path(folder)
        self.planned = sorted(set(planned))
        self.tool, self.inputs, self.force, self.option = tool, list(inputs), force, option
        self.staging: Path | None = None
        self._earlier: list[str] = []
        self._created: list[Path] = []
        self.replaced: list[str] = []
        self.removed: list[str] = []

    def check(self) -> None:
        """Validate the folder and the planned names (see the class docstring)."""
        check_output_folder(self.folder, inputs=self.inputs, option=self.option)
        if not self.folder.is_dir():
            return
        earlier = _earlier_files(self.folder)
        existing = [n for n in self.planned if os.path.lexists(self.folder / n)]
        for name in sorted(set(earlier) | set(existing)):
            path = self.folder / name
            if _is_input(path, self.inputs) is not None:
                fate = ("this run's result of the same name would replace it" if name in existing else
                        "it is also an earlier run's result, which --force would remove")
                raise OutputError(path, f"is an input of this run and {fate}; choose another {self.option} "
                                        "(nothing is ever written over an input)")
            if name in existing and path.is_dir():
                raise OutputError(path, f"is a folder where this run writes a file; choose another {self.option}")
        if (earlier or existing) and not self.force:
            shown = ", ".join(sorted(set(earlier) | set(existing))[:3])
            count = len(set(earlier) | set(existing))
            raise OutputError(self.folder, f"holds results of an earlier run ({shown}{', ...' if count > 3 else ''}"
                                           f"; {count} file{'s' if count > 1 else ''}); pass {FORCE} to replace "
                                           f"them, or choose another {self.option}")
        self._earlier = earlier
        if earlier or existing:
            logger.info("replacing the earlier run's results in %s (%s)", self.folder, FORCE)

    def __enter__(self) -> ResultFolder:
        if self.folder.is_dir():
            parent = self.folder
        else:
            parent = self.folder.parent
            self._created = _make_parents(parent)
        self.staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=parent))
        return self

    def _manifest(self, written: Sequence[str]) -> str:
        return json.dumps({"tool": f"yolov3_trt.{self.tool}", "files": list(written)}, indent=1) + "\n"

    def commit(self) -> None:
        """Move the staged files in, remove the earlier run's leftovers, write the manifest."""
        assert self.staging is not None
        written = sorted(p.name for p in self.staging.iterdir())
        (self.staging / MANIFEST).write_text(self._manifest(written), encoding="utf-8")
        if not self.folder.exists():
            os.rename(self.staging, self.folder)  # everything appears at once
            self.staging = None
            return
        self.replaced = [n for n in written if os.path.lexists(self.folder / n)]
        for name in written:
            os.replace(self.staging / name, self.folder / name)
        self.removed = [n for n in self._earlier if n not in written]
        for name in self.removed:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
        os.replace(self.staging / MANIFEST, self.folder / MANIFEST)
        self.staging.rmdir()
        self.staging = None
        if self.removed:
            logger.info("removed %d of the earlier run's files from %s (%s): %s", len(self.removed), self.folder,
                        FORCE, ", ".join(self.removed))

    def _discard(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        _remove_empty(self._created)

