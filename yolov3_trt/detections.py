"""Detections of one image: boxes in original-image pixels, scores, classes and their names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from yolov3_trt.errors import YoloV3TrtError


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
        """COCO results-format records, one per detection.

        Each record has ``image_id``, ``category_id`` (``category_ids[class_id]`` when given,
        e.g. the 80-to-91 COCO mapping, else the class id), ``category_name``, ``bbox``
        ``[x, y, w, h]`` in image pixels rounded to 2 decimals, ``score`` rounded to 5, and
        ``file_name`` when given.
        """
        if category_ids is not None and len(self) and int(self.class_ids.max()) >= len(category_ids):
            raise ValueError(f"class id {int(self.class_ids.max())} has no entry in category_ids "
                             f"({len(category_ids)} given)")
        records = []
        for box, score, class_id, name in zip(self.boxes.tolist(), self.scores.tolist(),
                                              self.class_ids.tolist(), self.class_names):
            x1, y1, x2, y2 = box
            record: dict[str, Any] = {
                "image_id": image_id,
                "category_id": int(category_ids[class_id]) if category_ids is not None else class_id,
                "category_name": name,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "score": round(score, 5),
            }
            if file_name is not None:
                record["file_name"] = file_name
            records.append(record)
        return records
