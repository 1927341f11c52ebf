"""Training-time augmentation: random scale/translate letterbox, HSV jitter, horizontal flip.

Everything works on ``(H, W, 3)`` uint8 RGB images and ``(N, 4)`` float32 xyxy boxes in
continuous pixel coordinates (the left edge of column 0 is x = 0, the right edge of the last
column is x = W), with ``(N,)`` int64 class ids beside them. Randomness comes only from the
``np.random.Generator`` passed in, so a sample is a pure function of its image and that rng.

Geometry. :func:`random_affine_letterbox` places the image in the square training input with one
``cv2.warpAffine``: ``out = image * scale + offset`` per axis (an
:class:`~yolov3_trt.preprocess.ImageTransform`). The base scale is Darknet's letterbox scale
(:func:`~yolov3_trt.preprocess.letterbox_size`, aspect ratio kept), multiplied by a factor drawn
from ``scale``; the offset centres the scaled image and then moves it by up to
``translate / 2`` of the free space (canvas minus image, negative when the image overflows) each
way, so ``translate = 1`` reaches edge to edge. Offsets are floored to whole pixels, so
``scale = (1, 1), translate = 0`` is exactly ``preprocess.letterbox``'s placement. Outside the
placed image the canvas is painted ``fill`` grey with crisp edges (the warp replicates the
border and the paint overwrites it), as Darknet's letterbox has.

Boxes (see :func:`transform_boxes`): mapped with the same transform, clipped to the canvas
``[0, size]``, and dropped when less than ``min_visible`` (20%) of their transformed area
survives the clip or when a clipped side is shorter than ``min_side`` (2 pixels): a box cut to a
sliver mostly labels grey padding or an unrecognisable fragment, and a sub-2-pixel box is below
what the stride-8 head can localise.

Colour (see :func:`hsv_jitter`): Darknet's ``random_distort_image`` meaning of the cfg values
``hue``, ``saturation`` and ``exposure``, on uint8 via OpenCV's HSV conversion and lookup tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from yolov3_trt.preprocess import GREY, ImageTransform, letterbox_size

FILL = int(round(GREY * 255))  # 128: the uint8 nearest Darknet's 0.5 grey (127.5)
MIN_VISIBLE = 0.2  # keep a box only if this fraction of its transformed area is on the canvas
MIN_SIDE = 2.0  # ... and both clipped sides are at least this many pixels


def _check_image(image: np.ndarray) -> None:
    """ValueError unless ``image`` is a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.size == 0:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a non-empty (H, W, 3) uint8 RGB array, got {got}")


def _check_boxes(boxes: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` as float32 ``(N, 4)`` and ``classes`` as int64 ``(N,)``; ValueError on mismatch."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)  # [] or (0,) from an image without objects
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    if len(classes) != len(boxes):
        raise ValueError(f"got {len(boxes)} boxes but {len(classes)} classes")
    return boxes, classes


def letterbox_placement(src_width: int, src_height: int, size: int) -> ImageTransform:
    """Darknet's letterbox of a ``src_width x src_height`` image into a ``size x size`` input:
    scale ``new / src`` per axis, integer centring ``(size - new) // 2`` (as ``preprocess.letterbox``)."""
    new_w, new_h = letterbox_size((src_width, src_height), (size, size))
    return ImageTransform(src_width=src_width, src_height=src_height, scale_x=new_w / src_width,
                          scale_y=new_h / src_height, pad_x=float((size - new_w) // 2),
                          pad_y=float((size - new_h) // 2))


def random_placement(src_width: int, src_height: int, size: int, rng: np.random.Generator, *,
                     scale: tuple[float, float] = (0.5, 1.5), translate: float = 0.2) -> ImageTransform:
    """A jittered letterbox placement (see the module docstring). Draws three uniforms from
    ``rng``: the scale factor, then the x and y shifts, so the stream is the same for any values.

    Returns the transform ``out = image * scale + pad`` (pads are whole pixels).
    """
    low, high = float(scale[0]), float(scale[1])
    if not 0 < low <= high:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    if not translate >= 0:
        raise ValueError(f"translate must be >= 0, got {translate!r}")
    factor = rng.uniform(low, high)
    shift_x, shift_y = rng.uniform(-translate, translate, size=2)
    new_w, new_h = letterbox_size((src_width, src_height), (size, size))
    width, height = new_w * factor, new_h * factor
    free_x, free_y = size - width, size - height
    return ImageTransform(src_width=src_width, src_height=src_height,
                          scale_x=width / src_width, scale_y=height / src_height,
                          pad_x=float(math.floor(free_x / 2 + shift_x * abs(free_x) / 2)),
                          pad_y=float(math.floor(free_y / 2 + shift_y * abs(free_y) / 2)))


def warp(image: np.ndarray, placement: ImageTransform, size: int, *, fill: int = FILL,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Place an ``(H, W, 3)`` uint8 image into a ``(size, size, 3)`` uint8 canvas of ``fill`` grey.

    ``placement`` maps continuous coordinates; ``cv2.warpAffine`` maps pixel centres, hence the
    ``(scale - 1) / 2`` term. Bilinear point sampling (no area averaging) when shrinking, as
    Darknet's own resize does at inference.
    """
    _check_image(image)
    sx, sy = placement.scale_x, placement.scale_y
    matrix = np.array([[sx, 0.0, placement.pad_x + 0.5 * (sx - 1.0)],
                       [0.0, sy, placement.pad_y + 0.5 * (sy - 1.0)]], dtype=np.float64)
    # Replicate, not constant: a constant border would blend grey into the image's edge pixels
    # when enlarging; the grey frame is painted afterwards on whole pixels instead.
    out = cv2.warpAffine(image, matrix, (size, size), flags=interpolation,
                         borderMode=cv2.BORDER_REPLICATE)
    x0, x1 = _span(placement.pad_x, sx * image.shape[1], size)
    y0, y1 = _span(placement.pad_y, sy * image.shape[0], size)
    out[:y0] = fill
    out[y1:] = fill
    out[y0:y1, :x0] = fill
    out[y0:y1, x1:] = fill
    return out


def _span(start: float, length: float, size: int) -> tuple[int, int]:
    """Whole-pixel range ``[a, b)`` of ``[start, start + length]`` on a ``size`` canvas."""
    a = min(max(int(round(start)), 0), size)
    b = min(max(int(round(start + length)), a), size)
    return a, b


def transform_boxes(boxes: np.ndarray, classes: np.ndarray, placement: ImageTransform, size: int, *,
                    min_visible: float = MIN_VISIBLE,
                    min_side: float = MIN_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Map ``(N, 4)`` xyxy image-pixel boxes into the ``size x size`` canvas, clip and filter.

    A box is kept when, after clipping to ``[0, size]``, both sides are ``>= min_side`` pixels
    and its area is ``>= min_visible`` times its transformed (unclipped) area.

    Returns float32 ``(M, 4)`` xyxy canvas-pixel boxes and their int64 ``(M,)`` classes.
    """
    boxes, classes = _check_boxes(boxes, classes)
    moved = placement.to_net(boxes)
    clipped = np.clip(moved, 0.0, float(size))
    width, height = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (width >= min_side) & (height >= min_side) & (width * height >= min_visible * area)
    return clipped[keep].astype(np.float32), classes[keep]


def random_affine_letterbox(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, size: int,
                            rng: np.random.Generator, *, scale: tuple[float, float] = (0.5, 1.5),
                            translate: float = 0.2, fill: int = FILL,
                            interpolation: int = cv2.INTER_LINEAR
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random scale and translation of a letterbox into the square training input.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        boxes: ``(N, 4)`` xyxy in image pixels; classes: ``(N,)``.
        size: side of the square training input.
        rng: source of the three draws (see :func:`random_placement`).
        scale: range of the factor applied to the letterbox scale; translate: fraction of the
            free (or overflowing) space the image may move; ``(1, 1)`` and ``0`` = plain letterbox.
        fill: uint8 grey of the padding; interpolation: an OpenCV ``INTER_*`` flag.

    Returns:
        ``(size, size, 3)`` uint8 image, float32 ``(M, 4)`` xyxy canvas-pixel boxes and int64
        ``(M,)`` classes, after the clip/drop rule of :func:`transform_boxes`.
    """
    _check_image(image)
    height, width = image.shape[:2]
    placement = random_placement(width, height, size, rng, scale=scale, translate=translate)
    out = warp(image, placement, size, fill=fill, interpolation=interpolation)
    return (out, *transform_boxes(boxes, classes, placement, size))


def letterbox_with_boxes(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, size: int, *,
                         fill: int = FILL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain (evaluation) letterbox of an image and its boxes into ``size x size``: the
    placement of ``preprocess.letterbox``, uint8 output, same box rule as training."""
    _check_image(image)
    placement = letterbox_placement(image.shape[1], image.shape[0], size)
    out = warp(image, placement, size, fill=fill)
    return (out, *transform_boxes(boxes, classes, placement, size))


def _rand_scale(rng: np.random.Generator, limit: float) -> float:
    """Darknet's ``rand_scale``: a factor in ``[1, limit]``, inverted on a coin flip."""
    if limit < 1:
        raise ValueError(f"saturation/exposure must be >= 1 (a factor range [1/s, s]), got {limit!r}")
    factor = rng.uniform(1.0, limit)
    return float(factor) if rng.random() < 0.5 else float(1.0 / factor)


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hue: float = 0.1,
               saturation: float = 1.5, exposure: float = 1.5) -> np.ndarray:
    """Darknet's ``random_distort_image`` on an ``(H, W, 3)`` uint8 RGB image; returns a new one.

    Hue moves by a uniform draw in ``[-hue, hue]`` of the full colour circle (wrapping);
    saturation and value are multiplied by factors in ``[1/s, s]`` (:func:`_rand_scale`) and
    clipped. Five draws from ``rng`` (hue; saturation factor and coin; exposure factor and coin)
    whatever the values. ``hue = 0, saturation = exposure = 1`` returns an unchanged copy (the
    uint8 HSV round trip itself is lossy, so it is skipped then).
    """
    _check_image(image)
    if hue < 0:
        raise ValueError(f"hue must be >= 0, got {hue!r}")
    d_hue = float(rng.uniform(-hue, hue))
    d_sat = _rand_scale(rng, saturation)
    d_val = _rand_scale(rng, exposure)
    if d_hue == 0.0 and d_sat == 1.0 and d_val == 1.0:
        return image.copy()
    # HSV_FULL: hue spans all 256 codes (not 0..179), so the shift and its wrap are one table.
    levels = np.arange(256, dtype=np.float64)
    table = np.stack([
        np.round(levels + d_hue * 256.0) % 256,
        np.clip(np.round(levels * d_sat), 0, 255),
        np.clip(np.round(levels * d_val), 0, 255),
    ], axis=-1).astype(np.uint8).reshape(1, 256, 3)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)
    return cv2.cvtColor(cv2.LUT(hsv, table), cv2.COLOR_HSV2RGB_FULL)


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an ``(H, W, C)`` image left-right and its ``(N, 4)`` xyxy pixel boxes
    (``x1, x2 -> W - x2, W - x1``). Returns new arrays (float32 boxes)."""
    width = image.shape[1]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


@dataclass(frozen=True)
class Augment:
    """Training augmentation with its hyper-parameters: affine letterbox → HSV → flip.

    Attributes:
        scale, translate: letterbox jitter (:func:`random_placement`).
        hue, saturation, exposure: Darknet's cfg values (:func:`hsv_jitter`).
        flip: probability of a horizontal flip.
        fill: uint8 padding grey; interpolation: OpenCV ``INTER_*`` flag of the warp.
        min_visible, min_side: the box drop rule (:func:`transform_boxes`).
    """

    scale: tuple[float, float] = (0.5, 1.5)
    translate: float = 0.2
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    flip: float = 0.5
    fill: int = FILL
    interpolation: int = cv2.INTER_LINEAR
    min_visible: float = MIN_VISIBLE
    min_side: float = MIN_SIDE

    def __call__(self, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, size: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Augment one ``(H, W, 3)`` uint8 RGB image with ``(N, 4)`` xyxy pixel boxes.

        Returns a ``(size, size, 3)`` uint8 RGB image, float32 ``(M, 4)`` xyxy canvas-pixel boxes
        and int64 ``(M,)`` classes. Always nine draws from ``rng`` (3 placement, 5 colour, 1 flip).
        """
        _check_image(image)
        height, width = image.shape[:2]
        placement = random_placement(width, height, size, rng, scale=self.scale,
                                     translate=self.translate)
        out = warp(image, placement, size, fill=self.fill, interpolation=self.interpolation)
        boxes, classes = transform_boxes(boxes, classes, placement, size,
                                         min_visible=self.min_visible, min_side=self.min_side)
        out = hsv_jitter(out, rng, self.hue, self.saturation, self.exposure)
        if rng.random() < self.flip:
            out, boxes = hflip(out, boxes)
        return out, boxes, classes
