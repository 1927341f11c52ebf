"""Detections of one image: boxes in original-image pixels, scores, classes and their names."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Sequence

import numpy as np

from yolov3_trt.errors import YoloV3TrtError

logger = logging.getLogger(__name__)


@dataclass
class Detections:
    """The objects found in one image, in descending score order.

    Attributes:
        boxes: ``(N, 4)`` float32 xyxy in original-image pixels.
        scores: ``(N,)`` float32, ``sigmoid(obj) * sigmoid(cls)``.
        class_ids: ``(N,)`` int32, 0-based indices into the model's class list.
        class_names: ``N`` names, one per detection.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        self.class_names = [str(name) for name in self.class_names]
        count = len(self.boxes)
        if not (len(self.scores) == len(self.class_ids) == len(self.class_names) == count):
            raise ValueError(f"Detections fields disagree in length: {count} boxes, "
                             f"{len(self.scores)} scores, {len(self.class_ids)} class ids, "
                             f"{len(self.class_names)} class names")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_arrays(cls, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                    names: Sequence[str]) -> Detections:
        """Build from arrays, naming each detection from ``names`` (the model's class list).

        Raises:
            YoloV3TrtError: a class id has no entry in ``names`` (names file too short).
        """
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        bad = ids[(ids < 0) | (ids >= len(names))]
        if bad.size:
            raise YoloV3TrtError(f"class id {int(bad[0])} has no name: {len(names)} class names given")
        return cls(boxes, scores, ids, [names[i] for i in ids])

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), [])

    def to_coco(self, image_id: int | str, file_name: str | None = None,
                category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """COCO results-format records, one per detection, in this object's (score) order.

        Each record has ``image_id``; ``file_name`` when given; ``category_id``:
        ``category_ids[class_index]`` when given (for COCO's 80 classes pass
        :func:`yolov3_trt.names.coco_category_ids`, the official 80 -> 91 mapping: person 1, ...,
        toothbrush 90), else the 0-based class index; ``category_name``; ``class_index``, the
        0-based index into the model's class list; ``bbox`` ``[x, y, w, h]`` in image pixels
        rounded to 2 decimals; ``score`` rounded to 5. Plain Python types throughout, so the list
        goes straight to ``json.dump`` and to ``pycocotools``' ``COCO.loadRes``.

        Raises:
            ValueError: a class index has no entry in ``category_ids``.
        """
        if category_ids is not None and len(self) and int(self.class_ids.max()) >= len(category_ids):
            raise ValueError(f"class id {int(self.class_ids.max())} has no entry in category_ids "
                             f"({len(category_ids)} given)")
        records = []
        for box, score, class_id, name in zip(self.boxes.tolist(), self.scores.tolist(),
                                              self.class_ids.tolist(), self.class_names):
            x1, y1, x2, y2 = box
            record: dict[str, Any] = {"image_id": image_id}
            if file_name is not None:
                record["file_name"] = file_name
            record.update({
                "category_id": int(category_ids[class_id]) if category_ids is not None else class_id,
                "category_name": name,
                "class_index": class_id,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(score, 5),
            })
            records.append(record)
        return records


def coco_image_ids(file_names: Sequence[str]) -> list[int]:
    """``image_id`` of each image of a set, given the file names in the set's (sorted) order.

    When every file name's stem is a decimal integer and no two are equal (COCO's
    ``000000397133.jpg`` -> 397133), the ids are those integers, as COCO tooling expects: each
    id then depends on its own file alone. Otherwise the ids are the positions ``0 .. N-1`` in
    ``file_names``, which the caller lists sorted by name, so the same set of files gives the
    same ids on every run and machine, whatever order the file system lists them in (adding or
    removing a file renumbers the files after it).
    """
    stems = [PurePath(name).stem for name in file_names]
    if stems and all(stem.isascii() and stem.isdigit() for stem in stems):
        numbers = [int(stem) for stem in stems]
        if len(set(numbers)) == len(numbers):
            return numbers
        logger.warning("image file names repeat a number (%s): image ids are positions in the "
                       "sorted list instead", Counter(numbers).most_common(1)[0][0])
    return list(range(len(file_names)))

