"""YOLO (Darknet) format: one ``.txt`` label file per image, one object per line.

A line is ``class cx cy w h``: an integer class id, then the box centre and size normalised to
the image (each in [0, 1]). An image without a label file, or with an empty one, has no objects.

Where the label of an image is (Darknet's rule, ``fill_truth_detection``): replace the last
``images`` (or ``JPEGImages``) folder of the image path with ``labels`` and the extension with
``.txt``; if that file does not exist, the ``.txt`` beside the image.

Validation (each error names the label file and line): 5 fields, numbers, an integer class id in
``0 .. len(names)-1``, coordinates and box edges inside [0, 1] give or take ``EDGE_SLOP`` (then
clipped: it absorbs writers that round to 6 decimals), width and height > 0.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np

from yolov3_trt.data.samples import IMAGE_SUFFIXES, DetectionDataset, Sample
from yolov3_trt.errors import DatasetError, FileError
from yolov3_trt.fileio import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

EDGE_SLOP = 1e-6
_IMAGE_FOLDERS = ("images", "JPEGImages")
_FIELDS = ("cx", "cy", "w", "h")


def label_path(image: str | os.PathLike) -> Path:
    """The label file of ``image`` by Darknet's rule (module docstring); it may not exist."""
    image = Path(image)
    parts = image.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _IMAGE_FOLDERS:
            mirrored = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
            if mirrored.is_file():
                return mirrored
            break
    return image.with_suffix(".txt")


def _number(text: str, what: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(path, f"{what} is not a number: {text!r}", line) from None
    if not math.isfinite(value):
        raise DatasetError(path, f"{what} is not a finite number: {text!r}", line)
    return value


def _class_id(text: str, path: Path, line: int, num_names: int | None, names_from: str) -> int:
    value = _number(text, "class id", path, line)
    if not value.is_integer():
        raise DatasetError(path, f"class id {text!r} is not an integer", line)
    cls = int(value)
    if cls < 0:
        raise DatasetError(path, f"class id {cls} is negative", line)
    if num_names is not None and cls >= num_names:
        raise DatasetError(path, f"class id {cls} out of range ({num_names} names in {names_from})", line)
    return cls


def _box(fields: list[str], path: Path, line: int) -> tuple[float, float, float, float]:
    cx, cy, w, h = (_number(t, what, path, line) for t, what in zip(fields, _FIELDS))
    for value, what in zip((cx, cy, w, h), _FIELDS):
        if not -EDGE_SLOP <= value <= 1 + EDGE_SLOP:
            raise DatasetError(path, f"{what} {value:g} outside [0, 1] (coordinates are normalised to the image)", line)
    if w <= 0 or h <= 0:
        raise DatasetError(path, f"box width and height must be > 0, got w {w:g}, h {h:g}", line)
    x1, x2, y1, y2 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    for lo, hi, axis in ((x1, x2, "x"), (y1, y2, "y")):
        if lo < -EDGE_SLOP or hi > 1 + EDGE_SLOP:
            raise DatasetError(path, f"box extends outside the image: {axis} from {lo:g} to {hi:g}", line)
    x1, x2, y1, y2 = (min(max(v, 0.0), 1.0) for v in (x1, x2, y1, y2))
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def read_labels(path: str | os.PathLike, num_names: int | None = None,
                names_from: str = "the names") -> tuple[np.ndarray, np.ndarray]:
    """Parse one label file into float32 ``(N, 4)`` cxcywh boxes and int64 ``(N,)`` classes.

    Args:
        path: the ``.txt`` label file.
        num_names: the class count (ids must be below it); ``None``: not checked here.
        names_from: where the names came from, for the out-of-range message.

    Raises:
        DatasetError: unreadable file, or a bad line (file and line in the message).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read label file ({err.__class__.__name__}: {err})") from None
    boxes, classes = [], []
    for line, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(path, f"expected 5 fields 'class cx cy w h', got {len(fields)}", line)
        classes.append(_class_id(fields[0], path, line, num_names, names_from))
        boxes.append(_box(fields[1:], path, line))
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(classes, dtype=np.int64)


def _is_image(path: Path) -> bool:
    # Hidden files are skipped: macOS "._x.jpg" resource forks and our own atomic temp files.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _load_samples(images: list[Path], names: list[str] | None, names_from: str) -> list[Sample]:
    num_names = len(names) if names is not None else None
    samples = []
    for image in images:
        labels = label_path(image)
        if labels.is_file():
            boxes, classes = read_labels(labels, num_names, names_from)
        else:
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        samples.append(Sample(image, boxes, classes))
    return samples


def _dataset(samples: list[Sample], names: list[str] | None, source: Path) -> DetectionDataset:
    if names is None:
        count = max((int(s.classes.max()) + 1 for s in samples if len(s.classes)), default=0)
        names = [f"class{i}" for i in range(count)]
        logger.warning("%s: no names file found; calling the %d classes class0..class%d", source, count, count - 1)
    return DetectionDataset(samples, names, os.fspath(source))


def load_yolo_folder(root: Path, names: list[str] | None, names_from: str = "the names") -> DetectionDataset:
    """Every image under ``root/images`` (or under ``root`` when it has no ``images/``), recursively.

    Raises:
        DatasetError: no images, or a bad label file.
    """
    image_root = root / "images" if (root / "images").is_dir() else root
    images = sorted(p for p in image_root.rglob("*") if _is_image(p))
    if not images:
        suffixes = "/".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise DatasetError(image_root, f"no images found ({suffixes}); the dataset is empty")
    return _dataset(_load_samples(images, names, names_from), names, root)


def load_yolo_list(path: Path, names: list[str] | None, names_from: str = "the names") -> DetectionDataset:
    """Images listed in ``path``, one per line, relative to the list file (``#`` lines and blanks skipped).

    Raises:
        DatasetError: unreadable list, a listed image that does not exist, no entries, a bad label.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read image list ({err.__class__.__name__}: {err})") from None
    images = []
    for line, raw in enumerate(text.splitlines(), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        image = path.parent / entry  # an absolute entry stays absolute
        if not image.is_file():
            raise DatasetError(path, f"image not found: {entry!r}", line)
        images.append(image)
    if not images:
        raise DatasetError(path, "the image list has no entries; the dataset is empty")
    return _dataset(_load_samples(images, names, names_from), names, path)


def format_labels(sample: Sample) -> str:
    """A sample's objects as YOLO label lines (6 decimals, as Darknet's tools write them)."""
    return "".join(f"{c} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
                   for c, b in zip(sample.classes.tolist(), sample.boxes.tolist()))


def _place_image(src: Path, dest: Path, link: bool) -> None:
    """Put ``src`` at ``dest`` (hard link when allowed and possible, else a copy), atomically."""
    if dest.exists() and os.path.samefile(src, dest):
        return
    try:
        with atomic_path(dest) as tmp:
            if link:
                tmp.unlink()
                try:
                    os.link(src, tmp)
                    return
                except OSError:  # another file system, or links not supported: copy instead
                    pass
            shutil.copyfile(src, tmp)
    except OSError as err:
        raise FileError(src, f"cannot copy image to {dest} ({err.strerror or err})") from None


def _destination_names(samples: list[Sample]) -> list[str]:
    """File names under ``images/``: the originals, or index-prefixed when two would share a label file."""
    stems = [s.image.stem for s in samples]
    if len(set(stems)) == len(stems):
        return [s.image.name for s in samples]
    return [f"{i:06d}_{s.image.name}" for i, s in enumerate(samples)]


def write_yolo(dataset: DetectionDataset, folder: str | os.PathLike, *, link: bool = True) -> Path:
    """Write ``folder/images/`` (hard-linked or copied), ``folder/labels/*.txt`` and ``folder/classes.names``.

    Every image gets a label file, empty for images without objects (explicit background).
    Images keep their file names unless two would share a label file, in which case all get a
    ``NNNNNN_`` index prefix. Returns ``folder``.
    """
    folder = Path(folder)
    for sample, name in zip(dataset.samples, _destination_names(dataset.samples)):
        _place_image(sample.image, folder / "images" / name, link)
        atomic_write_text(folder / "labels" / (Path(name).stem + ".txt"), format_labels(sample))
    atomic_write_text(folder / "classes.names", "".join(f"{n}\n" for n in dataset.names))
    return folder
