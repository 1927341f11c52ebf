"""Tests for yolov3_trt.detections."""
from __future__ import annotations

import json

import numpy as np
import pytest

from yolov3_trt.detections import Detections
from yolov3_trt.errors import YoloV3TrtError

NAMES = ["person", "bicycle", "car"]


def two() -> Detections:
    return Detections.from_arrays(np.array([[10.123, 20.456, 110.789, 220.001], [0, 0, 5, 5]], np.float64),
                                  np.array([0.987654321, 0.5]), np.array([2, 0]), NAMES)


def test_from_arrays_types_and_names() -> None:
    det = two()
    assert len(det) == 2
    assert det.boxes.dtype == np.float32 and det.boxes.shape == (2, 4)
    assert det.scores.dtype == np.float32 and det.class_ids.dtype == np.int32
    assert det.class_names == ["car", "person"]


def test_to_coco_fields() -> None:
    records = two().to_coco(image_id=42, file_name="dog.jpg")
    first = records[0]
    assert set(first) == {"image_id", "category_id", "category_name", "bbox", "score", "file_name"}
    assert first["image_id"] == 42 and first["category_id"] == 2 and first["category_name"] == "car"
    assert first["bbox"] == [10.12, 20.46, 100.67, 199.55]  # [x, y, w, h], 2 decimals
    assert first["score"] == 0.98765
    assert first["file_name"] == "dog.jpg"
    assert all(type(v) is float for v in first["bbox"]) and type(first["score"]) is float
    json.dumps(records)  # plain Python types only


def test_to_coco_category_mapping_and_no_file_name() -> None:
    records = two().to_coco(image_id="img", category_ids=[1, 2, 3])
    assert [r["category_id"] for r in records] == [3, 1]
    assert "file_name" not in records[0] and records[0]["image_id"] == "img"
    with pytest.raises(ValueError, match="category_ids"):
        two().to_coco(0, category_ids=[1, 2])


def test_empty() -> None:
    det = Detections.empty()
    assert len(det) == 0 and det.boxes.shape == (0, 4) and det.to_coco(1) == []


def test_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="disagree"):
        Detections(np.zeros((2, 4)), np.zeros(2), np.zeros(1), ["a", "b"])
    with pytest.raises(YoloV3TrtError, match="class id 3 has no name: 3 class names"):
        Detections.from_arrays(np.zeros((1, 4)), np.ones(1), np.array([3]), NAMES)
