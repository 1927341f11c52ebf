"""Drawing detections on images: boxes, ``"name 0.87"`` labels, one colour per class.

Sizes (line thickness, font scale) follow the image size so labels stay legible on a 4K frame
and do not swamp a 320-pixel thumbnail. Colours are a fixed palette indexed by class id, so a
class keeps its colour across frames, runs and machines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # only for annotations: drawing needs no more than the four attributes
    from yolov3_trt.detections import Detections

# 20 well-separated BGR colours (Tableau 20, reordered so neighbouring ids contrast).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
    (232, 199, 174), (120, 187, 255), (138, 223, 152), (150, 152, 255), (213, 176, 197),
    (148, 156, 196), (210, 182, 247), (199, 199, 199), (141, 219, 219), (229, 218, 158),
)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    """The BGR colour of ``class_id``: a fixed palette entry, cycling past 20 classes."""
    return PALETTE[int(class_id) % len(PALETTE)]


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (BGR), by Rec. 601 luma."""
    b, g, r = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def default_thickness(height: int, width: int) -> int:
    """Box line thickness for an image of this size: ~1 px per 400 px of the mean side."""
    return max(1, round((height + width) / 2 / 400))


def default_font_scale(height: int, width: int) -> float:
    """Font scale for an image of this size: Hershey simplex at 0.5 is ~12 px tall at 600 px."""
    return max(0.35, (height + width) / 2 / 1200)


def _label(name: str, class_id: int, score: float) -> str:
    return f"{name or class_id} {score:.2f}"


def _draw_label(image: np.ndarray, text: str, x1: int, y1: int, color: tuple[int, int, int],
                font_scale: float, text_thickness: int) -> None:
    """Draw ``text`` on a filled box at the box's top-left corner, in place.

    The label sits above the box when there is room, else just inside its top edge, and is
    shifted left so it never runs off the right border.
    """
    h, w = image.shape[:2]
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, text_thickness)
    pad = max(1, text_thickness)
    box_h = th + baseline + 2 * pad
    box_w = tw + 2 * pad
    top = y1 - box_h if y1 - box_h >= 0 else y1
    left = min(max(x1, 0), max(w - box_w, 0))
    cv2.rectangle(image, (left, top), (left + box_w - 1, top + box_h - 1), color, cv2.FILLED)
    cv2.putText(image, text, (left + pad, top + pad + th), _FONT, font_scale, _text_color(color),
                text_thickness, cv2.LINE_AA)


def draw_detections(image_bgr: np.ndarray, detections: Detections, *,
                    thickness: int | None = None, font_scale: float | None = None) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``detections`` drawn on it.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR image (a ``(H, W)`` grey image is converted to BGR).
            Never modified.
        detections: has ``boxes`` ``(N, 4)`` xyxy in image pixels, ``scores`` ``(N,)``,
            ``class_ids`` ``(N,)`` and ``class_names`` (one per detection; an empty name is
            shown as the class id). Boxes with non-finite coordinates are skipped.
        thickness: box line width in pixels; default scales with the image size.
        font_scale: OpenCV font scale of the labels; default scales with the image size.

    Returns:
        A new ``(H, W, 3)`` uint8 BGR image.
    """
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"draw_detections expects a uint8 image, got {image_bgr.dtype}")
    if image_bgr.ndim == 2:
        out = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    elif image_bgr.ndim == 3 and image_bgr.shape[2] == 3:
        out = np.ascontiguousarray(image_bgr).copy()
    else:
        raise ValueError(f"draw_detections expects an (H, W, 3) BGR image, got shape {image_bgr.shape}")
    h, w = out.shape[:2]
    thickness = default_thickness(h, w) if thickness is None else max(1, int(thickness))
    font_scale = default_font_scale(h, w) if font_scale is None else float(font_scale)
    text_thickness = max(1, round(font_scale * 1.5))

    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(detections.class_ids).reshape(-1)
    if not len(boxes) == len(scores) == len(class_ids) == len(detections.class_names):
        raise ValueError(f"detections disagree in length: {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(class_ids)} class ids, {len(detections.class_names)} names")
    # Draw the lowest scores first so the most confident labels end up on top.
    for i in np.argsort(scores, kind="stable"):
        if not np.all(np.isfinite(boxes[i])):
            continue
        # Clip to the image so a box far outside it does not overflow OpenCV's int32 maths.
        x1, y1, x2, y2 = (int(round(v)) for v in np.clip(boxes[i], -1, [w, h, w, h]))
        color = class_color(int(class_ids[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)  # axis-aligned: AA adds nothing
        _draw_label(out, _label(detections.class_names[i], int(class_ids[i]), float(scores[i])),
                    max(x1, 0), max(y1, 0), color, font_scale, text_thickness)
    return out
