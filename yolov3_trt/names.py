"""Class names: the COCO list Darknet ships (with COCO's official category ids), and names files.

A names file is Darknet's ``*.names`` format: one class name per line, in class-id order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from yolov3_trt.errors import FileError, YoloV3TrtError

# Darknet's cfg/coco.names, in its order and spelling ("motorbike", "aeroplane", "sofa", ...),
# which differs from the COCO API's names; class ids of Darknet-trained weights index this list.
COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa", "pottedplant", "bed",
    "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# The same 80 classes as the COCO API names them (instances_*.json "categories"), in the same order.
COCO_API_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# COCO's official category id (1..90, with the 11 ids of the 2014 paper's unused classes left out)
# of each of the 80 classes, in COCO_NAMES order: the standard 80 -> 91 mapping.
COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)


def is_coco(names: Sequence[str]) -> bool:
    """Whether ``names`` are COCO's 80 classes in ``coco.names`` order.

    Each name may use Darknet's spelling (``motorbike``) or the COCO API's (``motorcycle``);
    case and surrounding whitespace are ignored.
    """
    if len(names) != len(COCO_NAMES):
        return False
    return all(str(name).strip().lower() in (darknet, api)
               for name, darknet, api in zip(names, COCO_NAMES, COCO_API_NAMES))


def coco_category_ids(names: Sequence[str]) -> tuple[int, ...] | None:
    """COCO's official category ids (``person`` 1 .. ``toothbrush`` 90) for a class list.

    Returns:
        :data:`COCO_CATEGORY_IDS` when :func:`is_coco` holds for ``names``, else ``None``: other
        class lists have no official ids, and their detections keep the 0-based class index.
    """
    return COCO_CATEGORY_IDS if is_coco(names) else None


def load_names(path: str | os.PathLike) -> list[str]:
    """Read a names file: one name per line, surrounding whitespace stripped.

    Empty lines at the end are ignored (editors add them); an empty line in the middle is an
    error, because it would silently shift every later class id.

    Raises:
        FileError: the file is missing, unreadable, not UTF-8, empty, or has a blank line
            between names.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from Windows editors
    except FileNotFoundError:
        raise FileError(path, "names file not found") from None
    except IsADirectoryError:
        raise FileError(path, "expected a names file, got a folder") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FileError(path, f"cannot read names file ({err.__class__.__name__}: {err})") from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise FileError(path, "names file is empty")
    if "" in names:
        raise FileError(path, f"blank line {names.index('') + 1} in names file "
                              "(would shift later class ids)")
    return names


def default_names(num_classes: int) -> list[str]:
    """Names to use when none are given: COCO's for 80 classes, else ``class0 .. classN-1``."""
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    if num_classes == len(COCO_NAMES):
        return list(COCO_NAMES)
    return [f"class{i}" for i in range(num_classes)]


def check_names(names: list[str] | tuple[str, ...], num_classes: int,
                source: str | os.PathLike | None = None) -> None:
    """Check that ``names`` has one entry per model class.

    Args:
        names: class names, in class-id order.
        num_classes: the model's class count.
        source: where the names came from (a file path), for the message.

    Raises:
        YoloV3TrtError: ``names file X has 20 names but the model has 80 classes``.
    """
    if len(names) == num_classes:
        return
    what = f"names file {os.fspath(source)}" if source is not None else "the class names"
    raise YoloV3TrtError(f"{what} has {len(names)} names but the model has {num_classes} classes")
