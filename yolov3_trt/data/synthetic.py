"""A procedurally generated detection dataset for tests, benchmarks and demos.

``generate(folder, n)`` renders ``n`` scenes (:mod:`yolov3_trt.data.shapes`: six shape classes
on textured, noisy backgrounds, with partial occlusion) and writes::

    folder/
      images/000000.png ...     the images (PNG, lossless; or JPEG quality 95 with image_format="jpg")
      labels/000000.txt ...     YOLO labels, one per image (empty for background-only images)
      classes.names             circle, square, triangle, star, cross, ring
      annotations.json          COCO JSON of all images (image id = index + 1, category id = class + 1)
      train.txt, val.txt        with val_fraction > 0: image lists (paths relative to folder)
      train.json, val.json      ... and the same split as COCO JSON (ids renumbered within each)
      synthetic.json            the generate() arguments

The split is ``DetectionDataset.split(1 - val_fraction, seed)`` of the whole set, so it is fixed by
the seed. ``synthetic.json`` records the arguments; it also marks the folder as this generator's,
so running ``generate`` into it again replaces the old files (stale images included) instead of
refusing, while a folder with anything else in it is refused unless ``overwrite``.

Image ``i`` is a pure function of ``(seed, i)``: the same seed writes byte-identical files, and a
larger ``num_images`` only appends images.
"""
from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from yolov3_trt.data.coco_format import load_coco, write_coco
from yolov3_trt.data.dataset import DetectionDataset, Sample, xyxy_to_cxcywh
from yolov3_trt.data.shapes import SHAPE_NAMES, Scene, render
from yolov3_trt.data.yolo_format import write_yolo
from yolov3_trt.errors import FileError
from yolov3_trt.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

SizeSpec = int | tuple[int, int] | range
MIN_IMAGE_SIDE = 32
_OUR_FILES = re.compile(r"(images/\d{6}\.(png|jpg)|labels/\d{6}\.txt|classes\.names|annotations\.json"
                        r"|(train|val)\.(txt|json)|synthetic\.json)")
MARKER = "synthetic.json"


def image_size(size: SizeSpec, rng: np.random.Generator) -> tuple[int, int]:
    """``(width, height)`` for one image: ``S`` -> S x S, ``(W, H)``, or each side drawn from a ``range``."""
    if isinstance(size, range):
        return size[int(rng.integers(0, len(size)))], size[int(rng.integers(0, len(size)))]
    if isinstance(size, tuple):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def _check_size(size: SizeSpec) -> None:
    if isinstance(size, range):
        if not len(size):
            raise ValueError(f"empty size range {size}")
        sides = [min(size)]
    elif isinstance(size, tuple):
        if len(size) != 2:
            raise ValueError(f"size must be (width, height), got {size}")
        sides = list(size)
    else:
        sides = [size]
    if any(int(s) < MIN_IMAGE_SIDE for s in sides):
        raise ValueError(f"image sides must be >= {MIN_IMAGE_SIDE} px, got {size}")


def render_image(seed: int, index: int, size: SizeSpec = 416, max_objects: int = 10) -> Scene:
    """Scene ``index`` of the dataset with ``seed`` (what :func:`generate` writes as image ``index``)."""
    rng = np.random.default_rng([seed, index])
    width, height = image_size(size, rng)
    return render(rng, width, height, max_objects)


def _encode(image: np.ndarray, image_format: str) -> bytes:
    if image_format == "png":
        # Huffman-only: noisy images gain little from LZ matching, and it is twice as fast
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY])
    else:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image_format} image")
    return data.tobytes()


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    """Make ``folder`` ready: new or empty, a previous output of :func:`generate` (its files are
    removed, so no stale image survives), or anything else only with ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise FileError(folder, "exists and is not a folder")
    existing = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not existing:
        return
    if not overwrite and not (folder / MARKER).is_file():
        raise FileError(folder, "folder is not empty and not a synthetic dataset; choose a new one or overwrite "
                                "(--overwrite)")
    for path in existing:
        if _OUR_FILES.fullmatch(path.relative_to(folder).as_posix()):
            path.unlink()


def _settings(num_images: int, size: SizeSpec, seed: int, max_objects: int, val_fraction: float,
              image_format: str) -> dict:
    """The generate() arguments as JSON (a range as ``[min, max]`` inclusive)."""
    if isinstance(size, range):
        size_json: object = {"min": min(size), "max": max(size)} if size.step == 1 else list(size)
    else:
        size_json = list(size) if isinstance(size, tuple) else size
    return {"generator": "yolov3_trt.data.synthetic", "num_images": num_images, "size": size_json, "seed": seed,
            "max_objects": max_objects, "val_fraction": val_fraction, "image_format": image_format,
            "classes": list(SHAPE_NAMES)}


def _sample(scene: Scene, image: Path) -> Sample:
    height, width = scene.image.shape[:2]
    boxes = np.array([o.box for o in scene.objects], np.float64).reshape(-1, 4)
    return Sample(image, xyxy_to_cxcywh(boxes, width, height), [o.cls for o in scene.objects], width, height)


def _write_split(dataset: DetectionDataset, folder: Path, val_fraction: float, seed: int) -> None:
    train, val = dataset.split(1 - val_fraction, seed)
    for name, part in (("train", train), ("val", val)):
        lines = "".join(f"{s.image.relative_to(folder).as_posix()}\n" for s in part.samples)
        atomic_write_text(folder / f"{name}.txt", lines)
        write_coco(part, folder / f"{name}.json")


def generate(folder: str | os.PathLike, num_images: int, *, size: SizeSpec = 416, seed: int = 0,
             max_objects: int = 10, val_fraction: float = 0.0, image_format: str = "png",
             overwrite: bool = False, progress: bool = False) -> DetectionDataset:
    """Render and write a synthetic dataset (module docstring for the layout); return it loaded.

    Args:
        folder: output folder: new, empty, or an earlier output of this function (replaced);
            any other folder only with ``overwrite``.
        num_images: how many images (>= 1).
        size: ``S`` (S x S), ``(width, height)``, or a ``range`` each side is drawn from per image.
        seed: everything is a function of it.
        max_objects: objects per image are drawn from 1..max_objects (5 % of images have none;
            0: background only); almost fully hidden ones are then dropped
            (:mod:`yolov3_trt.data.shapes`).
        val_fraction: with > 0, also write the train/val split files.
        image_format: ``"png"`` (lossless: pixels exactly as labelled) or ``"jpg"`` (quality 95).
        overwrite: allow any non-empty folder; files named as this module names them are
            replaced, others are left alone.
        progress: show a tqdm progress bar.

    Returns:
        The dataset loaded back from ``annotations.json`` (image sizes known), names from
        ``classes.names``.

    Raises:
        FileError: ``folder`` is a file, or holds other files and ``overwrite`` is false.
        ValueError: a bad argument (the CLI checks user input before calling).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if max_objects < 0:
        raise ValueError(f"max_objects must be >= 0, got {max_objects}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    _check_size(size)
    folder = Path(folder)
    _prepare_folder(folder, overwrite)
    # the marker goes first: it claims the folder, so a run that dies half-way can be repeated
    atomic_write_json(folder / MARKER, _settings(num_images, size, seed, max_objects, val_fraction, image_format))

    def render_and_write(index: int) -> Sample:
        scene = render_image(seed, index, size, max_objects)
        path = folder / "images" / f"{index:06d}.{image_format}"
        atomic_write_bytes(path, _encode(scene.image, image_format))
        return _sample(scene, path)

    # Threads: numpy and OpenCV release the GIL in the heavy steps. Each image depends only on
    # (seed, index), so the output does not depend on the number of threads or their timing.
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
        samples = list(tqdm(pool.map(render_and_write, range(num_images)), total=num_images,
                            desc="synthetic images", unit="img", disable=not progress))
    dataset = DetectionDataset(samples, list(SHAPE_NAMES), os.fspath(folder))
    write_yolo(dataset, folder)  # the images are already in place: only labels and names are written
    write_coco(dataset, folder / "annotations.json")
    if val_fraction > 0:
        _write_split(dataset, folder, val_fraction, seed)
    logger.debug("wrote %d synthetic images with %d objects to %s", num_images,
                sum(len(s.classes) for s in samples), folder)
    return load_coco(folder / "annotations.json", list(SHAPE_NAMES), os.fspath(folder / "classes.names"))
