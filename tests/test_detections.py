"""Tests for yolov3_trt.detections."""
from __future__ import annotations

import json

import numpy as np
import pytest

from yolov3_trt.detections import Detections, coco_image_ids
from yolov3_trt.errors import YoloV3TrtError
from yolov3_trt.names import COCO_API_NAMES, COCO_CATEGORY_IDS, COCO_NAMES, coco_category_ids, default_names

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
    assert list(first) == ["image_id", "file_name", "category_id", "category_name", "class_index", "bbox", "score"]
    assert first["image_id"] == 42 and first["category_id"] == 2 and first["category_name"] == "car"
    assert first["class_index"] == 2  # without category_ids, category_id is the 0-based index too
    assert first["bbox"] == [10.12, 20.46, 100.67, 199.55]  # [x, y, w, h], 2 decimals
    assert first["score"] == 0.98765
    assert first["file_name"] == "dog.jpg"
    assert all(type(v) is float for v in first["bbox"]) and type(first["score"]) is float
    json.dumps(records)  # plain Python types only


def test_to_coco_category_mapping_and_no_file_name() -> None:
    records = two().to_coco(image_id="img", category_ids=[1, 2, 3])
    assert [r["category_id"] for r in records] == [3, 1]
    assert [r["class_index"] for r in records] == [2, 0]
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


# --- COCO category ids: COCO's official 1..90 for the 80 COCO classes, else the 0-based index -----

def coco_record(name: str, names=COCO_NAMES) -> dict:
    det = Detections.from_arrays(np.array([[1, 2, 3, 4]]), np.array([0.5]), np.array([list(names).index(name)]), names)
    return det.to_coco(0, "x.jpg", category_ids=coco_category_ids(names))[0]


@pytest.mark.parametrize("name, coco_id", [("person", 1), ("bicycle", 2), ("car", 3), ("motorbike", 4),
                                           ("truck", 8), ("traffic light", 10), ("fire hydrant", 11),
                                           ("stop sign", 13), ("dog", 18), ("backpack", 27),
                                           ("diningtable", 67), ("tvmonitor", 72), ("toothbrush", 90)])
def test_coco_names_get_coco_category_ids(name: str, coco_id: int) -> None:
    record = coco_record(name)
    assert record["category_id"] == coco_id
    assert record["class_index"] == COCO_NAMES.index(name) and record["category_name"] == name


def test_coco_category_ids_match_torchvision() -> None:
    """torchvision's COCO category list (index = official id, "N/A" for the unused ids) as an oracle."""
    meta = pytest.importorskip("torchvision.models._meta")
    official = {name: i for i, name in enumerate(meta._COCO_CATEGORIES) if name not in ("N/A", "__background__")}
    assert len(official) == 80
    assert [official[name] for name in COCO_API_NAMES] == list(COCO_CATEGORY_IDS)
    assert sorted(COCO_CATEGORY_IDS) == list(COCO_CATEGORY_IDS) and COCO_CATEGORY_IDS[-1] == 90


def test_coco_category_ids_only_for_the_coco_list() -> None:
    assert coco_category_ids(COCO_NAMES) == COCO_CATEGORY_IDS
    assert coco_category_ids(list(COCO_API_NAMES)) == COCO_CATEGORY_IDS  # COCO API spelling
    assert coco_category_ids([n.upper() + " " for n in COCO_NAMES]) == COCO_CATEGORY_IDS
    assert coco_category_ids(default_names(80)) == COCO_CATEGORY_IDS
    assert coco_category_ids(COCO_NAMES[:79]) is None
    assert coco_category_ids(COCO_NAMES[1:] + COCO_NAMES[:1]) is None  # same names, other order
    assert coco_category_ids(["person", "bicycle", "car"]) is None
    assert coco_category_ids(default_names(3)) is None


def test_other_class_lists_keep_0_based_ids() -> None:
    names = ["person", "bicycle", "car"]  # COCO's first three names, but not COCO's class list
    record = coco_record("car", names)
    assert record["category_id"] == 2 and record["class_index"] == 2
    assert coco_record("dog", ["cat", "dog"])["category_id"] == 1


# --- image ids -----------------------------------------------------------------------------------

def test_image_ids_from_integer_file_names() -> None:
    assert coco_image_ids(["000000000139.jpg", "000000397133.jpg", "42.png"]) == [139, 397133, 42]
    assert coco_image_ids(["7"]) == [7]


def test_image_ids_fall_back_to_sorted_positions(caplog: pytest.LogCaptureFixture) -> None:
    assert coco_image_ids(["dog.jpg", "eagle.jpg"]) == [0, 1]
    assert coco_image_ids(["000000000139.jpg", "dog.jpg"]) == [0, 1]  # not every name is a number
    assert coco_image_ids(["1.jpg", "\u0661.jpg"]) == [0, 1]  # Arabic-Indic digit one: not a COCO id
    assert coco_image_ids([]) == []
    with caplog.at_level("WARNING"):
        assert coco_image_ids(["001.jpg", "1.png", "2.jpg"]) == [0, 1, 2]  # 001 and 1 collide
    assert "repeat a number (1)" in caplog.text
