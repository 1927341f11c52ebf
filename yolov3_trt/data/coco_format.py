"""COCO detection JSON: ``images``, ``categories``, ``annotations`` with pixel ``bbox = [x, y, w, h]``.

Reading:
- an image's ``file_name`` is looked up under an ``images/`` folder beside the JSON, then under
  the JSON's own folder (an absolute ``file_name`` is used as is);
- category ids map to contiguous class ids in ascending id order (COCO's 1..90 -> 0..79);
- ``iscrowd`` annotations are skipped (COCO evaluation ignores them as well), as are boxes with
  zero width or height (a handful exist in COCO itself) with a warning;
- a box may pass the image edge by ``PIXEL_SLOP`` (rounding in real annotation files) and is then
  clipped; further out is an error.
Errors name the JSON and the entry (``annotations[12] (id 345)``): COCO files are often one line.

Writing (:func:`to_coco`): image ids are ``index + 1`` and category ids ``class + 1``, so an
evaluator can map detections of any dataset onto the ground truth without a lookup table.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from yolov3_trt.data.samples import DetectionDataset, Sample, cxcywh_to_xyxy
from yolov3_trt.errors import DatasetError
from yolov3_trt.fileio import atomic_write_json
from yolov3_trt.preprocess import read_image

logger = logging.getLogger(__name__)

PIXEL_SLOP = 1.0


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read COCO JSON ({err.__class__.__name__}: {err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"not valid JSON: {err.msg} (column {err.colno})", err.lineno) from None


def _field(entry: Any, key: str, where: str, path: Path) -> Any:
    if not isinstance(entry, dict):
        raise DatasetError(path, f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise DatasetError(path, f"{where}: missing key {key!r}")
    return entry[key]


def _list(data: Any, key: str, path: Path) -> list:
    value = _field(data, key, "top level", path)
    if not isinstance(value, list):
        raise DatasetError(path, f"{key!r} must be a list, got {type(value).__name__}")
    return value


def _positive_int(value: Any, what: str, where: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
        raise DatasetError(path, f"{where}: {what} must be a positive integer, got {value!r}")
    return int(value)


def _where(kind: str, index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{kind}[{index}]" + (f" (id {ident})" if ident is not None else "")


def _image_file(file_name: Any, where: str, path: Path) -> Path:
    if not isinstance(file_name, str) or not file_name:
        raise DatasetError(path, f"{where}: file_name must be a non-empty string, got {file_name!r}")
    beside = path.parent / "images" / file_name
    if beside.is_file():
        return beside
    own = path.parent / file_name
    if own.is_file():
        return own
    raise DatasetError(path, f"{where}: image file not found: {file_name!r} "
                             f"(looked in {path.parent / 'images'} and {path.parent})")


def _categories(data: Any, path: Path) -> tuple[dict[Any, int], list[str]]:
    """``{category id: class id}`` in ascending id order, and the category names."""
    by_id: dict[Any, str] = {}
    for index, entry in enumerate(_list(data, "categories", path)):
        where = _where("categories", index, entry)
        cid, name = _field(entry, "id", where, path), _field(entry, "name", where, path)
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise DatasetError(path, f"{where}: category id must be an integer, got {cid!r}")
        if cid in by_id:
            raise DatasetError(path, f"{where}: duplicate category id {cid}")
        by_id[cid] = str(name)
    if not by_id:
        raise DatasetError(path, "'categories' is empty")
    order = sorted(by_id)
    return {cid: k for k, cid in enumerate(order)}, [by_id[cid] for cid in order]


def _bbox(value: Any, width: int, height: int, where: str, path: Path) -> list[float] | None:
    """The box as normalised cxcywh, clipped; ``None`` for a zero-size box."""
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise DatasetError(path, f"{where}: bbox must be 4 numbers [x, y, w, h], got {value!r}")
    x, y, w, h = (float(v) for v in value)
    if w < 0 or h < 0:
        raise DatasetError(path, f"{where}: bbox has negative size {value!r}")
    if w == 0 or h == 0:
        return None
    if x < -PIXEL_SLOP or y < -PIXEL_SLOP or x + w > width + PIXEL_SLOP or y + h > height + PIXEL_SLOP:
        raise DatasetError(path, f"{where}: bbox {value!r} outside the {width}x{height} image")
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 <= x1 or y2 <= y1:
        return None
    return [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]


def load_coco(path: Path, names: list[str] | None, names_from: str = "the names") -> DetectionDataset:
    """Read a COCO detection JSON (module docstring for the rules).

    Raises:
        DatasetError: invalid JSON, missing keys, unknown image or category ids, boxes outside
            their image, missing image files, no images.
    """
    data = _read_json(path)
    class_of, category_names = _categories(data, path)
    if names is not None and len(names) != len(category_names):
        raise DatasetError(path, f"{len(category_names)} categories but {len(names)} names in {names_from}")
    images: dict[Any, dict] = {}
    for index, entry in enumerate(_list(data, "images", path)):
        where = _where("images", index, entry)
        image_id = _field(entry, "id", where, path)
        if isinstance(image_id, (dict, list)):
            raise DatasetError(path, f"{where}: image id must be a number or string, got {image_id!r}")
        if image_id in images:
            raise DatasetError(path, f"{where}: duplicate image id {image_id!r}")
        images[image_id] = {
            "file": _image_file(_field(entry, "file_name", where, path), where, path),
            "width": _positive_int(_field(entry, "width", where, path), "width", where, path),
            "height": _positive_int(_field(entry, "height", where, path), "height", where, path),
            "boxes": [], "classes": [],
        }
    if not images:
        raise DatasetError(path, "'images' is empty; the dataset is empty")
    skipped = 0
    for index, entry in enumerate(_list(data, "annotations", path)):
        where = _where("annotations", index, entry)
        image_id = _field(entry, "image_id", where, path)
        category_id = _field(entry, "category_id", where, path)
        if isinstance(image_id, (dict, list)) or image_id not in images:
            raise DatasetError(path, f"{where}: image_id {image_id!r} is not in 'images'")
        if isinstance(category_id, (dict, list)) or category_id not in class_of:
            raise DatasetError(path, f"{where}: category_id {category_id!r} is not in 'categories'")
        if entry.get("iscrowd", 0):
            continue
        image = images[image_id]
        box = _bbox(_field(entry, "bbox", where, path), image["width"], image["height"], where, path)
        if box is None:
            skipped += 1
            continue
        image["boxes"].append(box)
        image["classes"].append(class_of[category_id])
    if skipped:
        logger.warning("%s: skipped %d zero-size boxes", path, skipped)
    samples = [Sample(im["file"], np.array(im["boxes"], np.float32).reshape(-1, 4), np.array(im["classes"], np.int64),
                      im["width"], im["height"]) for im in images.values()]
    return DetectionDataset(samples, list(names) if names is not None else category_names, os.fspath(path))


def _size(sample: Sample) -> tuple[int, int]:
    if sample.width is not None and sample.height is not None:
        return sample.width, sample.height
    height, width = read_image(sample.image).shape[:2]  # YOLO labels carry no size: decode once
    return width, height


def _file_names(samples: list[Sample], json_folder: Path) -> list[str]:
    """Names relative to ``json_folder/images`` if every image is under it, else to ``json_folder``, else absolute."""
    resolved = [s.image.resolve() for s in samples]
    for base in (json_folder / "images", json_folder):
        base = base.resolve()
        if all(p.is_relative_to(base) for p in resolved):
            return [p.relative_to(base).as_posix() for p in resolved]
    return [p.as_posix() for p in resolved]


def to_coco(dataset: DetectionDataset, json_folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The dataset as a COCO detection dict (bbox only, no segmentation).

    Image ids are ``index + 1``, category ids ``class + 1``, annotation ids count from 1. Image
    sizes unknown to the dataset are read from the files. ``file_name`` is relative to
    ``json_folder`` (see :func:`write_coco`); without it, the absolute path.

    Raises:
        ImageReadError: an image of unknown size cannot be read.
    """
    samples = dataset.samples
    if json_folder is None:
        file_names = [s.image.resolve().as_posix() for s in samples]
    else:
        file_names = _file_names(samples, Path(json_folder))
    images, annotations = [], []
    for index, (sample, file_name) in enumerate(zip(samples, file_names)):
        width, height = _size(sample)
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
        for box, cls in zip(cxcywh_to_xyxy(sample.boxes, width, height).tolist(), sample.classes.tolist()):
            x1, y1, x2, y2 = (round(v, 3) for v in box)
            w, h = round(x2 - x1, 3), round(y2 - y1, 3)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": cls + 1,
                                "bbox": [x1, y1, w, h], "area": round(w * h, 3), "iscrowd": 0})
    return {
        "info": {"description": "written by yolov3_trt"},  # no paths or dates: same data, same bytes
        "licenses": [],  # some pycocotools versions copy 'info' and 'licenses' in loadRes
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(dataset.names)],
    }


def write_coco(dataset: DetectionDataset, json_path: str | os.PathLike) -> Path:
    """Write the dataset as COCO JSON at ``json_path`` (atomically); returns the path.

    ``file_name`` is relative to an ``images/`` folder beside the JSON when every image is under
    it, else to the JSON's folder when every image is under that, else absolute, so
    :func:`load_coco` finds the images again.
    """
    json_path = Path(json_path)
    atomic_write_json(json_path, to_coco(dataset, json_path.parent))
    return json_path
