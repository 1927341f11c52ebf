"""Tests for yolov3_trt.data.augment: boxes follow their pixels, clip/drop rule, letterbox geometry."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolov3_trt.data.augment import (
    FILL,
    Augment,
    hflip,
    hsv_jitter,
    letterbox_placement,
    letterbox_with_boxes,
    random_affine_letterbox,
    random_placement,
    transform_boxes,
)
from yolov3_trt.preprocess import ImageTransform, letterbox

# Non-overlapping rectangles (xyxy, continuous pixels) in a 320x240 image, one colour each.
RECTS = np.array([[10, 10, 60, 50], [250, 20, 315, 90], [100, 100, 180, 170],
                  [5, 180, 70, 235], [200, 150, 300, 230], [140, 20, 200, 70]], dtype=np.float32)
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
BACKGROUND = 40  # neither a rectangle colour nor the fill grey


def rectangles_image() -> np.ndarray:
    image = np.full((240, 320, 3), BACKGROUND, dtype=np.uint8)
    for (x1, y1, x2, y2), colour in zip(RECTS.astype(int), COLOURS):
        image[y1:y2, x1:x2] = colour
    return image


def colour_bbox(image: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray | None:
    """xyxy (continuous pixels) of the pixels of exactly ``colour``, or None if there are none."""
    ys, xs = np.nonzero(np.all(image == np.array(colour, dtype=np.uint8), axis=2))
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def reference_keep(moved: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The documented drop rule, written out per box; also each box's distance to the thresholds."""
    keep, margin = [], []
    for x1, y1, x2, y2 in moved:
        cw = min(x2, size) - max(x1, 0)
        ch = min(y2, size) - max(y1, 0)
        visible = max(cw, 0) * max(ch, 0) / ((x2 - x1) * (y2 - y1))
        keep.append(cw >= 2 and ch >= 2 and visible >= 0.2)
        margin.append(min(abs(cw - 2), abs(ch - 2), abs(visible - 0.2) * 100))
    return np.array(keep), np.array(margin)


@pytest.mark.parametrize("seed", range(40))
def test_boxes_follow_their_pixels(seed: int) -> None:
    size = 160
    image = rectangles_image()
    augment = Augment(scale=(0.5, 1.6), translate=1.0, hue=0.0, saturation=1.0, exposure=1.0,
                      interpolation=cv2.INTER_NEAREST)
    out, boxes, classes = augment(image, RECTS, np.arange(len(RECTS)), size, np.random.default_rng(seed))
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    assert boxes.dtype == np.float32 and classes.dtype == np.int64
    for box, k in zip(boxes, classes):
        pixels = colour_bbox(out, COLOURS[k])
        assert pixels is not None, f"class {k} kept but none of its pixels are visible"
        np.testing.assert_allclose(box, pixels, atol=1.0, err_msg=f"class {k}")
    # Which boxes survive is the documented rule applied to the geometry the same rng gives.
    placement = random_placement(320, 240, size, np.random.default_rng(seed), scale=(0.5, 1.6),
                                 translate=1.0)
    expected, margin = reference_keep(placement.to_net(RECTS), size)
    decided = margin > 1e-3
    kept = np.isin(np.arange(len(RECTS)), classes)
    np.testing.assert_array_equal(kept[decided], expected[decided])


def test_augmentation_actually_varies() -> None:
    image = rectangles_image()
    augment = Augment(hue=0.0, saturation=1.0, exposure=1.0)
    results = [augment(image, RECTS, np.arange(6), 160, np.random.default_rng(s)) for s in range(20)]
    assert len({out.tobytes() for out, *_ in results}) == 20
    # Class 0 sits in the left fifth: its box on the right half means the sample was flipped.
    sides = {bool(boxes[classes == 0, 0][0] > 80) for _, boxes, classes in results if 0 in classes}
    assert sides == {True, False}


def test_clip_and_drop_rule() -> None:
    identity = ImageTransform(src_width=100, src_height=100, scale_x=1.0, scale_y=1.0, pad_x=0.0, pad_y=0.0)
    boxes = np.array([
        [10, 10, 50, 50],     # inside: kept as is
        [90, 10, 130, 50],    # 25% visible: kept, clipped
        [92, 0, 132, 10],     # exactly 20% visible: kept
        [95, 10, 135, 50],    # 12.5% visible: dropped
        [-30, 20, 5, 60],     # 5/35 visible: dropped
        [10, 10, 11.5, 50],   # 1.5 px wide: dropped
        [40, 98.5, 60, 130],  # 1.5 px tall after clipping: dropped
        [120, 10, 150, 50],   # off the canvas: dropped
    ], dtype=np.float32)
    out, classes = transform_boxes(boxes, np.arange(len(boxes)), identity, 100)
    np.testing.assert_array_equal(classes, [0, 1, 2])
    np.testing.assert_allclose(out, [[10, 10, 50, 50], [90, 10, 100, 50], [92, 0, 100, 10]])
    assert out.dtype == np.float32 and classes.dtype == np.int64
    assert (out >= 0).all() and (out <= 100).all()


def test_transform_boxes_scales_and_handles_empty() -> None:
    placement = ImageTransform(src_width=50, src_height=50, scale_x=2.0, scale_y=0.5, pad_x=3.0, pad_y=7.0)
    out, classes = transform_boxes(np.array([[1, 2, 11, 22]]), np.array([4]), placement, 200)
    np.testing.assert_allclose(out, [[5, 8, 25, 18]])
    np.testing.assert_array_equal(classes, [4])
    out, classes = transform_boxes(np.zeros((0,)), np.zeros((0,)), placement, 200)
    assert out.shape == (0, 4) and classes.shape == (0,)
    with pytest.raises(ValueError, match="classes"):
        transform_boxes(np.zeros((2, 4)), np.zeros(3), placement, 200)


def test_hflip_maps_x1_to_width_minus_x2() -> None:
    image = np.arange(2 * 10 * 3, dtype=np.uint8).reshape(2, 10, 3)
    flipped, boxes = hflip(image, np.array([[1, 2, 4, 5], [0, 0, 10, 2]], dtype=np.float32))
    np.testing.assert_array_equal(boxes, [[6, 2, 9, 5], [0, 0, 10, 2]])
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    again, back = hflip(flipped, boxes)
    np.testing.assert_array_equal(again, image)
    np.testing.assert_array_equal(back, [[1, 2, 4, 5], [0, 0, 10, 2]])


def test_hsv_zero_jitter_is_identity() -> None:
    image = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    out = hsv_jitter(image, np.random.default_rng(1), hue=0.0, saturation=1.0, exposure=1.0)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_hsv_keeps_shape_and_dtype_and_is_deterministic() -> None:
    image = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    first = hsv_jitter(image, np.random.default_rng(5))
    assert first.shape == image.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, hsv_jitter(image, np.random.default_rng(5)))
    assert any(not np.array_equal(first, hsv_jitter(image, np.random.default_rng(s))) for s in range(6, 9))


def test_hsv_exposure_scales_value_within_range() -> None:
    grey = np.full((4, 4, 3), 100, dtype=np.uint8)
    seen = set()
    for seed in range(40):
        out = hsv_jitter(grey, np.random.default_rng(seed), hue=0.3, saturation=3.0, exposure=2.0)
        value = int(out[0, 0, 0])
        assert np.all(out == value)  # grey has no hue or saturation to change: it stays grey
        assert 50 - 1 <= value <= 200 + 1
        seen.add(value > 100)
    assert seen == {True, False}  # both brighter and darker ([1/s, s])


def test_hsv_hue_shift_moves_colour() -> None:
    red = np.zeros((2, 2, 3), dtype=np.uint8)
    red[..., 0] = 255
    hues = []
    for seed in range(30):
        out = hsv_jitter(red, np.random.default_rng(seed), hue=0.5, saturation=1.0, exposure=1.0)
        hues.append(int(cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]))
    assert len(set(hues)) > 10  # ±half a circle from red spreads the hue widely


@pytest.mark.parametrize("src", [(300, 200), (201, 333), (640, 480), (60, 1000), (416, 416), (100, 61)])
@pytest.mark.parametrize("size", [416, 320, 97])
def test_letterbox_geometry_matches_preprocess(src: tuple[int, int], size: int) -> None:
    width, height = src
    yy, xx = np.mgrid[0:height, 0:width]
    # Smooth and never the fill value, so the padding is exactly where the fill grey is.
    image = np.stack([20 + 80 * xx / width, 20 + 80 * yy / height, 60 + 0 * xx], axis=-1).astype(np.uint8)
    reference, transform = letterbox(image, (size, size))
    ours, boxes, _ = letterbox_with_boxes(image, np.array([[0, 0, width, height]]), np.array([0]), size)
    placement = letterbox_placement(width, height, size)
    assert (placement.pad_x, placement.pad_y) == (transform.pad_x, transform.pad_y)
    assert placement.scale_x == pytest.approx(transform.scale_x)
    assert placement.scale_y == pytest.approx(transform.scale_y)
    np.testing.assert_array_equal(np.all(ours == FILL, axis=2), np.all(reference == 0.5, axis=2))
    new = [transform.pad_x, transform.pad_y, transform.pad_x + transform.scale_x * width,
           transform.pad_y + transform.scale_y * height]
    np.testing.assert_allclose(boxes[0], new, atol=1e-3)
    # Contents: OpenCV's half-pixel bilinear vs Darknet's align-corners one, on a smooth image.
    assert np.abs(ours / 255.0 - reference).mean() < 2 / 255


def test_affine_letterbox_without_jitter_is_the_letterbox() -> None:
    image = rectangles_image()
    plain = letterbox_with_boxes(image, RECTS, np.arange(6), 160)
    for seed in range(3):
        jittered = random_affine_letterbox(image, RECTS, np.arange(6), 160, np.random.default_rng(seed),
                                           scale=(1.0, 1.0), translate=0.0)
        for a, b in zip(plain, jittered):
            np.testing.assert_array_equal(a, b)


def test_random_placement_stays_within_its_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = random_placement(320, 240, 160, rng, scale=(0.5, 1.5), translate=0.2)
        factor = p.scale_x / 0.5  # the letterbox scale of 320x240 into 160 is 0.5
        assert 0.5 <= factor <= 1.5
        width = 320 * p.scale_x
        free = 160 - width
        assert abs(p.pad_x + width / 2 - 80) <= 0.1 * abs(free) + 1  # centre moves <= translate/2


def test_same_seed_same_result_different_seed_different() -> None:
    image = rectangles_image()
    augment = Augment()
    a = augment(image, RECTS, np.arange(6), 128, np.random.default_rng(7))
    b = augment(image, RECTS, np.arange(6), 128, np.random.default_rng(7))
    c = augment(image, RECTS, np.arange(6), 128, np.random.default_rng(8))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_bad_inputs() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uint8"):
        random_affine_letterbox(np.zeros((4, 4, 3), np.float32), np.zeros((0, 4)), np.zeros(0), 32, rng)
    with pytest.raises(ValueError, match="scale"):
        random_placement(10, 10, 32, rng, scale=(1.5, 0.5))
    with pytest.raises(ValueError, match="saturation"):
        hsv_jitter(np.zeros((2, 2, 3), np.uint8), rng, saturation=0.5)
