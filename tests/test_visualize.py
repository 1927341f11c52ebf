"""Tests for yolov3_trt.visualize.draw_detections."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from yolov3_trt.visualize import PALETTE, class_color, draw_detections

from yolov3_trt.detections import Detections

NAMES = ["cat", "dog", "bird"]


def make_detections(boxes: list[list[float]], scores: list[float], class_ids: list[int]) -> Detections:
    """Detections named from NAMES (ids beyond it get an empty name, drawn as the id)."""
    return Detections(boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                      scores=np.asarray(scores, np.float32),
                      class_ids=np.asarray(class_ids, np.int32),
                      class_names=[NAMES[i] if i < len(NAMES) else "" for i in class_ids])


@pytest.fixture
def image() -> np.ndarray:
    return np.full((240, 320, 3), 127, np.uint8)


def test_draws_box_edges_and_leaves_input(image: np.ndarray) -> None:
    before = image.copy()
    dets = make_detections([[50, 80, 200, 200]], [0.87], [1])
    out = draw_detections(image, dets)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8 and out is not image
    # Left, right and bottom edges are drawn in the class colour; the interior is untouched.
    assert tuple(out[150, 50]) == class_color(1)
    assert tuple(out[150, 200]) == class_color(1)
    assert tuple(out[200, 120]) == class_color(1)
    assert tuple(out[150, 120]) == (127, 127, 127)
    # The label ("dog 0.87") sits on a filled background above the box.
    label_area = out[60:79, 52:90]
    assert (label_area == np.array(class_color(1), np.uint8)).all(axis=-1).mean() > 0.3
    assert (label_area != label_area[0, 0]).any()  # some text pixels


def test_label_inside_when_box_at_top(image: np.ndarray) -> None:
    out = draw_detections(image, make_detections([[10, 0, 100, 100]], [0.5], [0]))
    assert (out[2:12, 12:40] == np.array(class_color(0), np.uint8)).all(axis=-1).mean() > 0.3


def test_empty_detections_return_copy(image: np.ndarray) -> None:
    out = draw_detections(image, make_detections([], [], []))
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_deterministic_and_class_colours_differ(image: np.ndarray) -> None:
    dets = make_detections([[20, 30, 120, 150], [150, 40, 300, 220]], [0.9, 0.4], [0, 2])
    a = draw_detections(image, dets)
    b = draw_detections(image, dets)
    np.testing.assert_array_equal(a, b)
    assert class_color(0) != class_color(2)
    assert class_color(len(PALETTE) + 3) == class_color(3)


def test_unknown_class_and_odd_boxes_do_not_fail(image: np.ndarray) -> None:
    dets = make_detections([[-1e9, -5, 1e9, 1e6], [np.nan, 0, 10, 10], [300, 230, 330, 250]],
                           [0.3, 0.9, 0.8], [99, 0, 1])
    out = draw_detections(image, dets, thickness=3, font_scale=1.0)
    assert out.shape == image.shape


def test_grey_input_and_bad_inputs(image: np.ndarray) -> None:
    grey = np.zeros((50, 60), np.uint8)
    assert draw_detections(grey, make_detections([[5, 5, 40, 40]], [0.9], [0])).shape == (50, 60, 3)
    with pytest.raises(ValueError, match="uint8"):
        draw_detections(image.astype(np.float32), make_detections([], [], []))
    with pytest.raises(ValueError, match="BGR"):
        draw_detections(np.zeros((5, 5, 4), np.uint8), make_detections([], [], []))
    with pytest.raises(ValueError, match="length"):
        draw_detections(image, SimpleNamespace(boxes=np.zeros((1, 4)), scores=np.zeros(2), class_ids=np.zeros(1),
                                               class_names=["cat"]))


def test_sizes_scale_with_image() -> None:
    small = draw_detections(np.zeros((200, 200, 3), np.uint8), make_detections([[20, 60, 180, 180]], [0.9], [0]))
    big = draw_detections(np.zeros((2000, 2000, 3), np.uint8), make_detections([[200, 600, 1800, 1800]], [0.9], [0]))
    # Thicker lines on the big image: count coloured pixels along a row crossing the left edge.
    colour = np.array(class_color(0), np.uint8)
    small_w = (small[120, :100] == colour).all(axis=-1).sum()
    big_w = (big[1200, :1000] == colour).all(axis=-1).sum()
    assert big_w > small_w
