"""Tests for yolov3_trt.visualize: drawing, and the label layout (one label per box, inside the image,
not hiding each other) checked through layout_labels, without reading text back."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from yolov3_trt.detections import Detections
from yolov3_trt.visualize import PALETTE, class_color, draw_detections, layout_labels

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "darknet" / "reference" / "yolov3-tiny-416" / \
    "detections.json"

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


# --- label layout: one label per box, inside the image, not hiding each other -------------------

COCO_LIKE = {2: "car", 7: "truck", 16: "dog", 1: "bicycle"}


def named(boxes: list[list[float]], scores: list[float], class_ids: list[int]) -> Detections:
    return Detections(boxes=np.asarray(boxes, np.float32).reshape(-1, 4), scores=np.asarray(scores, np.float32),
                      class_ids=np.asarray(class_ids, np.int32), class_names=[COCO_LIKE[i] for i in class_ids])


def inside_image(rect: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    x1, y1, x2, y2 = rect
    return 0 <= x1 <= x2 < shape[1] and 0 <= y1 <= y2 < shape[0]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return min(a[2], b[2]) >= max(a[0], b[0]) and min(a[3], b[3]) >= max(a[1], b[1])


def colour_mask(image: np.ndarray, class_id: int) -> np.ndarray:
    return (image == np.array(class_color(class_id), np.uint8)).all(axis=-1)


@pytest.mark.parametrize("second", [[50, 80, 200, 200], [51, 79, 201, 201]], ids=["identical", "iou_0.98"])
@pytest.mark.parametrize("truck_first", [False, True])
def test_multi_label_box_gets_one_label_listing_both(second: list[int], truck_first: bool) -> None:
    image = np.zeros((240, 320, 3), np.uint8)  # not the fixture's grey: that is the truck's colour
    boxes, scores, ids = [[50, 80, 200, 200], second], [0.6, 0.4], [2, 7]
    if truck_first:  # input order must not matter: the best class leads the label and gives the colour
        boxes, scores, ids = boxes[::-1], scores[::-1], ids[::-1]
    dets = named(boxes, scores, ids)
    labels = layout_labels(dets, image.shape)
    assert len(labels) == 1
    (label,) = labels
    assert label.text == "car 0.60, truck 0.40" and label.lines == ("car 0.60, truck 0.40",)
    assert sorted(label.members) == [0, 1] and dets.class_names[label.members[0]] == "car"
    assert label.color == class_color(2) and label.placement == "above"
    assert label.box == (50, 80, 200, 200)
    out = draw_detections(image, dets)
    # One box and one label, in the car's colour: nothing anywhere in the truck's colour.
    assert not colour_mask(out, 7).any()
    x1, y1, x2, y2 = label.rect
    patch = out[y1:y2 + 1, x1:x2 + 1]
    assert colour_mask(patch, 2).mean() > 0.5 and (~colour_mask(patch, 2)).any()  # background + text
    assert not colour_mask(out[:y1], 2).any()  # nothing drawn above the label


def test_boxes_below_group_iou_keep_their_own_labels(image: np.ndarray) -> None:
    dets = named([[50, 80, 200, 200], [60, 90, 210, 210]], [0.6, 0.4], [2, 7])  # IoU ~0.76
    labels = layout_labels(dets, image.shape)
    assert [lb.text for lb in labels] == ["car 0.60", "truck 0.40"]
    assert not overlap(labels[0].rect, labels[1].rect)
    assert len(layout_labels(dets, image.shape, group_iou=0.7)) == 1


EDGE_BOXES = {
    "left": [0, 100, 60, 180], "right": [280, 100, 320, 180], "top": [100, 0, 200, 80],
    "bottom": [100, 180, 200, 240], "top_left": [0, 0, 40, 30], "top_right": [290, 0, 320, 20],
    "bottom_left": [0, 225, 30, 240], "bottom_right": [300, 230, 320, 240], "whole": [0, 0, 320, 240],
    "past_every_edge": [-50, -50, 400, 300], "thin_at_top": [150, 0, 155, 3], "one_pixel": [319, 239, 319, 239],
}


@pytest.mark.parametrize("where", sorted(EDGE_BOXES))
@pytest.mark.parametrize("multi", [False, True], ids=["one_class", "three_classes"])
def test_labels_stay_inside_the_image_at_every_edge(image: np.ndarray, where: str, multi: bool) -> None:
    box = EDGE_BOXES[where]
    dets = named([box] * 3, [0.9, 0.5, 0.3], [16, 2, 7]) if multi else named([box], [0.9], [16])
    (label,) = layout_labels(dets, image.shape)
    assert inside_image(label.rect, image.shape), (label.rect, label.placement)
    assert label.placement in ("above", "inside", "below")
    # Touching the box: its top edge (above / inside) or its bottom edge (below).
    x1, y1, x2, y2 = (min(max(v, 0), s - 1) for v, s in zip(box, [320, 240, 320, 240]))
    assert label.rect[0] <= x2 and label.rect[2] >= min(x1, 320 - (label.rect[2] - label.rect[0] + 1))
    # Drawn: the whole label background lies within the image, with text on it.
    out = draw_detections(image, dets)
    rx1, ry1, rx2, ry2 = label.rect
    patch = out[ry1:ry2 + 1, rx1:rx2 + 1]
    assert colour_mask(patch, 16).mean() > 0.5 and (~colour_mask(patch, 16)).any()


def test_label_above_inside_below() -> None:
    shape = (240, 320)
    (above,) = layout_labels(named([[50, 80, 200, 200]], [0.9], [16]), shape)
    (inside,) = layout_labels(named([[50, 2, 200, 200]], [0.9], [16]), shape)
    assert above.placement == "above" and above.rect[3] == 79 and above.rect[0] == 50
    assert inside.placement == "inside" and inside.rect[1] == 2 and inside.rect[0] == 50
    # Below: a box at the top whose inside spot is taken by a better box's label.
    first, second = layout_labels(named([[50, 2, 200, 200], [52, 4, 120, 40]], [0.9, 0.8], [16, 2]), shape,
                                  font_scale=0.5)
    assert first.placement == "inside" and second.placement != "above"
    assert not overlap(first.rect, second.rect) and inside_image(second.rect, (240, 320))


def test_label_wider_than_the_image_wraps_and_shrinks() -> None:
    shape = (120, 100)
    (label,) = layout_labels(named([[10, 40, 90, 110]] * 3, [0.9, 0.5, 0.3], [16, 2, 7]), shape)
    assert label.text == "dog 0.90, car 0.50, truck 0.30" and len(label.lines) > 1
    assert " ".join(label.lines) == label.text  # broken after a comma
    assert inside_image(label.rect, shape)
    long = Detections(np.array([[0, 30, 50, 60]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32),
                      ["a very long class name indeed"])
    (label,) = layout_labels(long, (100, 200))
    assert label.font_scale < 0.35 and inside_image(label.rect, (100, 200))


def test_overlapping_boxes_labels_do_not_overlap(image: np.ndarray) -> None:
    # Two boxes whose tops nearly coincide: the second label moves instead of covering the first.
    dets = named([[40, 60, 200, 200], [45, 62, 190, 210]], [0.8, 0.7], [16, 1])
    first, second = layout_labels(dets, image.shape)
    assert first.placement == "above" and not overlap(first.rect, second.rect)
    out = draw_detections(image, dets)
    for label, class_id in ((first, 16), (second, 1)):
        x1, y1, x2, y2 = label.rect
        patch = out[y1:y2 + 1, x1:x2 + 1]
        # Each label is still fully there (its background colour dominates, text on it).
        assert colour_mask(patch, class_id).mean() > 0.5 and (~colour_mask(patch, class_id)).any()


def test_crowd_of_boxes_labels_do_not_overlap() -> None:
    shape = (480, 640)
    boxes = [[60 + 37 * i, 100 + 9 * (i % 3), 160 + 37 * i, 300] for i in range(12)]
    dets = named(boxes, [0.9 - 0.05 * i for i in range(12)], [[16, 2, 7, 1][i % 4] for i in range(12)])
    labels = layout_labels(dets, shape)
    assert len(labels) == 12
    for i, a in enumerate(labels):
        assert inside_image(a.rect, shape)
        for b in labels[i + 1:]:
            assert not overlap(a.rect, b.rect), (a, b)


def test_box_lines_never_cross_a_label(image: np.ndarray) -> None:
    # A later (lower-score) box whose edge runs through the first box's label area.
    dets = named([[40, 60, 200, 200], [70, 10, 120, 230]], [0.9, 0.3], [16, 2])
    first = layout_labels(dets, image.shape)[0]
    out = draw_detections(image, dets)
    x1, y1, x2, y2 = first.rect
    assert not colour_mask(out[y1:y2 + 1, x1:x2 + 1], 2).any()


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"{REFERENCE} not found")
def test_darknet_reference_detections_one_label_per_box_none_hidden() -> None:
    """Darknet's own multi-label output for its six photos (dog.jpg: car+truck on two boxes)."""
    import cv2

    reference = json.loads(REFERENCE.read_text())["images"]
    for file_name, found in reference.items():
        shape = cv2.imread(str(REFERENCE.parents[2] / "images" / file_name)).shape
        dets = Detections([d["box_xyxy"] for d in found], [d["score"] for d in found],
                          [d["class_id"] for d in found], [d["name"] for d in found])
        labels = layout_labels(dets, shape)
        boxes = {tuple(d["box_xyxy"]) for d in found}
        assert len(labels) == len(boxes), file_name
        for label in labels:
            names = {dets.class_names[i] for i in label.members}
            same_box = {d["name"] for d in found if tuple(d["box_xyxy"]) == tuple(dets.boxes[label.members[0]].tolist())
                        or np.allclose(d["box_xyxy"], dets.boxes[label.members[0]], atol=1e-3)}
            assert names == same_box and all(name in label.text for name in names)
            assert inside_image(label.rect, shape)
        for i, a in enumerate(labels):
            assert not any(overlap(a.rect, b.rect) for b in labels[i + 1:]), file_name
    dog = [lb.text for lb in layout_labels(Detections(
        [d["box_xyxy"] for d in reference["dog.jpg"]], [d["score"] for d in reference["dog.jpg"]],
        [d["class_id"] for d in reference["dog.jpg"]], [d["name"] for d in reference["dog.jpg"]]), (576, 768))]
    assert "car 0.62, truck 0.43" in dog and "truck 0.56, car 0.52" in dog
