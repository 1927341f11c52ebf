"""Pick N calibration images from a folder, an image list, a dataset or a list of files.

Calibration wants images that look like deployment: every class, every kind of scene, in the
proportions the data has them. When labels exist (a YOLO folder or list, a COCO JSON), images are
stratified by their *dominant class* (the class with most boxes in the image, ties to the lower
id; images without boxes form their own stratum) and each stratum gets a share of N proportional
to its size (largest remainder, at least one image per stratum while N allows). Within a stratum
the pick is a seeded shuffle, so the same (source, N, seed) always gives the same list, in the
same order, on every machine (paths are sorted before shuffling).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import CalibrationError

logger = logging.getLogger(__name__)

DEFAULT_NUM_IMAGES = 128  # enough for stable entropy histograms of a detector; ~1 min on 2 CPU cores at 416
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

CalibSource = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]  # what callers may pass as images



def _is_image(path: Path) -> bool:
    # Hidden files are skipped: macOS "._x.jpg" resource forks and atomic temp files.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _folder_images(folder: Path) -> list[Path]:
    """Every image under ``folder/images`` (or ``folder``), recursively, sorted."""
    root = folder / "images" if (folder / "images").is_dir() else folder
    try:
        return sorted(p for p in root.rglob("*") if _is_image(p))
    except OSError as err:
        raise CalibrationError(folder, f"cannot list the folder ({err.strerror or err})") from None


def _dominant_classes(images: Sequence[Path]) -> list[int] | None:
    """Dominant class per image from YOLO label files beside the images; None if none has one."""
    from ..data.yolo_format import label_path, read_labels

    strata, found = [], False
    for image in images:
        labels = label_path(image)
        if not labels.is_file():
            strata.append(-1)
            continue
        found = True
        _, classes = read_labels(labels, None, "the labels")
        strata.append(_dominant(classes))
    return strata if found else None


def _dominant(classes: np.ndarray) -> int:
    classes = np.asarray(classes, dtype=np.int64)
    return int(np.argmax(np.bincount(classes))) if classes.size else -1


def _candidates(source: CalibSource) -> tuple[list[Path], list[int] | None, str]:
    """(images, dominant class per image or None, description) for any accepted source."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise CalibrationError(path, "no such file or folder (expected calibration images: a folder, "
                                         "an image list .txt, a COCO .json or an image file)")
        if path.is_dir():
            images = _folder_images(path)
            if not images:
                raise CalibrationError(path, "no images found (" + "/".join(sorted(s[1:] for s in IMAGE_SUFFIXES))
                                       + "); the calibration set is empty")
            return images, _dominant_classes(images), str(path)
        if path.suffix.lower() in (".txt", ".json"):
            from ..data.dataset import load_dataset

            dataset = load_dataset(path)
            if not dataset.samples:
                raise CalibrationError(path, "the dataset has no images; the calibration set is empty")
            strata = [_dominant(s.classes) for s in dataset.samples]
            return [Path(s.image) for s in dataset.samples], (strata if max(strata) >= 0 else None), str(path)
        files = [path]
    else:
        files = [Path(p) for p in source]
        if not files:
            raise CalibrationError(None, "no images given; the calibration set is empty")
    for file in files:
        if not file.is_file():
            raise CalibrationError(file, "no such image file")
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            raise CalibrationError(file, "not an image file (expected " +
                                   "/".join(sorted(s[1:] for s in IMAGE_SUFFIXES)) + ")")
    return sorted(files), None, f"{len(files)} image files"


def _allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Split ``n`` over strata of ``sizes`` in proportion (largest remainder), >= 1 each while n allows."""
    sizes = np.asarray(sizes, dtype=np.float64)
    share = sizes / sizes.sum() * n
    counts = np.floor(share).astype(np.int64)
    if n >= len(sizes):
        counts = np.maximum(counts, 1)
    counts = np.minimum(counts, sizes.astype(np.int64))
    order = np.argsort(-(share - np.floor(share)), kind="stable")  # largest remainder first
    while counts.sum() < n:
        grew = False
        for k in order:
            if counts.sum() < n and counts[k] < sizes[k]:
                counts[k] += 1
                grew = True
        if not grew:
            break
    while counts.sum() > n:  # the at-least-one rule overshot: take from the largest strata
        counts[int(np.argmax(counts))] -= 1
    return counts.tolist()


def sample_images(source: CalibSource, num_images: int = DEFAULT_NUM_IMAGES, seed: int = 0) -> list[Path]:
    """Pick ``num_images`` calibration images from ``source``, seeded and stratified by class.

    Args:
        source: a folder of images (recursive; ``images/`` inside it if present, with YOLO labels
            beside them used for stratification), an image list ``.txt`` or COCO ``.json``
            (labels from the dataset), one image file, or a sequence of image files.
        num_images: how many to pick; the source must hold at least that many.
        seed: the shuffle seed; the same source, count and seed give the same list.

    Returns:
        The chosen image paths, in a deterministic order.

    Raises:
        CalibrationError: a missing or empty source, non-image files, or fewer images than asked.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    images, strata, what = _candidates(source)
    if len(images) < num_images:
        raise CalibrationError(what, f"has {len(images)} images but {num_images} calibration images were asked "
                                     f"for; add images or ask for at most {len(images)}")
    rng = np.random.default_rng(seed)
    if strata is None:
        picked = [images[i] for i in rng.permutation(len(images))[:num_images]]
        logger.info("calibration: %d of %d images from %s (seed %d)", num_images, len(images), what, seed)
        return picked
    keys = sorted(set(strata))
    members = [[i for i, s in enumerate(strata) if s == k] for k in keys]
    counts = _allocate([len(m) for m in members], num_images)
    chosen = []
    for group, count in zip(members, counts):
        chosen.extend(group[j] for j in rng.permutation(len(group))[:count])
    order = rng.permutation(len(chosen))  # interleave the strata (calibration order can matter for batches)
    logger.info("calibration: %d of %d images from %s, stratified over %d dominant classes (seed %d)",
                num_images, len(images), what, len(keys), seed)
    return [images[chosen[i]] for i in order]
