"""Drawing detections on images: boxes, ``"name 0.87"`` labels, one colour per class.

Sizes (line thickness, font scale) follow the image size so labels stay legible on a 4K frame
and do not swamp a 320-pixel thumbnail. Colours are a fixed palette indexed by class id, so a
class keeps its colour across frames, runs and machines.

Multi-label detections (the same box kept for several classes, as Darknet keeps it) are drawn as
one box with one label listing every class, best first (``"car 0.60, truck 0.40"``), as Darknet
draws ``car, truck``. :func:`layout_labels` decides where each label goes, without drawing, so
tests and other renderers can check or reuse the layout:

- above the box when there is room, else inside its top edge, else below it; shifted left or
  right to stay inside the image, and wrapped onto several lines (or set smaller) when wider
  than the image;
- the most confident boxes are placed first; a label that would cover one already placed tries
  the other positions (the other side of its box, beside the label in the way) and, if every
  position overlaps, takes the one that overlaps least;
- every box is drawn before any label, so no box line runs through a label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from yolov3_trt.boxes import paired_iou

if TYPE_CHECKING:  # only for annotations: drawing needs no more than the four attributes
    from yolov3_trt.detections import Detections

# 20 well-separated BGR colours (Tableau 20, reordered so neighbouring ids contrast).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
    (232, 199, 174), (120, 187, 255), (138, 223, 152), (150, 152, 255), (213, 176, 197),
    (148, 156, 196), (210, 182, 247), (199, 199, 199), (141, 219, 219), (229, 218, 158),
)

GROUP_IOU = 0.95  # detections whose boxes overlap at least this much share one box and label
MIN_FONT_SCALE = 0.3  # a label wider than the image is set smaller, down to this, then wrapped

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PLACEMENTS = ("above", "inside", "below")

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, inclusive pixel coordinates


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


def _text_thickness(font_scale: float) -> int:
    return max(1, round(font_scale * 1.5))


@dataclass(frozen=True)
class Label:
    """One drawn box and its label, as :func:`layout_labels` places them.

    Attributes:
        text: every class of the box with its score, best first: ``"car 0.60, truck 0.40"``.
        lines: ``text`` as drawn: one line, or several when it is wider than the image.
        rect: the label's filled background, ``(x1, y1, x2, y2)`` inclusive pixels, inside the
            image whenever the image is large enough to hold it.
        box: the drawn box, ``(x1, y1, x2, y2)`` in pixels (clipped to one pixel past the image).
        placement: ``"above"``, ``"inside"`` or ``"below"`` the box's top / bottom edge, or
            ``"clamped"`` when the image is too small for any of them.
        members: indices into the detections drawn by this box, best score first.
        class_id: the best member's class, which gives the colour.
        color: BGR colour of the box and the label background.
        font_scale: OpenCV font scale of the text (smaller than asked only for a label that
            would not fit the image width).
    """

    text: str
    lines: tuple[str, ...]
    rect: Rect
    box: Rect
    placement: str
    members: tuple[int, ...]
    class_id: int
    color: tuple[int, int, int]
    font_scale: float


def _overlaps(rects: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """Pixels each of ``rects`` ``(K, 4)`` shares with all of ``placed`` ``(P, 4)`` together
    (inclusive xyxy), as ``(K,)``."""
    iw = np.minimum(rects[:, None, 2], placed[None, :, 2]) - np.maximum(rects[:, None, 0], placed[None, :, 0]) + 1
    ih = np.minimum(rects[:, None, 3], placed[None, :, 3]) - np.maximum(rects[:, None, 1], placed[None, :, 1]) + 1
    return (np.clip(iw, 0, None) * np.clip(ih, 0, None)).sum(axis=1)


def _group(boxes: np.ndarray, scores: np.ndarray, group_iou: float) -> list[list[int]]:
    """Indices of the finite boxes, grouped greedily by IoU (:func:`yolov3_trt.boxes.paired_iou`)
    with each group's best box, identical boxes always (even empty ones, whose IoU is 0); groups
    and their members in descending score order (ties keep input order)."""
    groups: list[list[int]] = []
    for i in np.argsort(-scores, kind="stable").tolist():
        if not np.all(np.isfinite(boxes[i])):
            continue
        for members in groups:
            best = boxes[members[0]]
            if np.array_equal(best, boxes[i]) or paired_iou(best, boxes[i]) >= group_iou:
                members.append(i)
                break
        else:
            groups.append([i])
    return groups


def _text_block(lines: Sequence[str], font_scale: float) -> tuple[int, int, int, int, int]:
    """(width, height, line height, padding, text height) of a label's background for ``lines``."""
    thickness = _text_thickness(font_scale)
    pad = max(1, thickness)
    widths = []
    text_h = baseline = 0
    for line in lines:
        (tw, th), base = cv2.getTextSize(line, _FONT, font_scale, thickness)
        widths.append(tw)
        text_h, baseline = max(text_h, th), max(baseline, base)
    line_h = text_h + baseline + pad
    return max(widths) + 2 * pad, pad + len(lines) * line_h, line_h, pad, text_h


def _wrap(parts: Sequence[str], font_scale: float, max_width: int) -> list[str]:
    """``parts`` joined by ", " into as few lines as fit ``max_width`` (a part never splits)."""
    lines: list[str] = []
    for part in parts:
        if lines and _text_block([f"{lines[-1]}, {part}"], font_scale)[0] <= max_width:
            lines[-1] = f"{lines[-1]}, {part}"
        else:
            lines.append(part)
    return [line + ("," if i < len(lines) - 1 else "") for i, line in enumerate(lines)]


def _fit_text(parts: Sequence[str], font_scale: float, width: int) -> tuple[list[str], float]:
    """Lines and font scale for a label of ``parts`` on an image ``width`` wide: one line at
    ``font_scale`` when it fits, else wrapped after a comma, else (one class name wider than the
    image) set smaller, down to ``MIN_FONT_SCALE``."""
    scale = font_scale
    while True:
        lines = _wrap(parts, scale, width)
        if _text_block(lines, scale)[0] <= width or scale * 0.9 < min(MIN_FONT_SCALE, font_scale):
            return lines, scale
        scale *= 0.9


def _place(box: Rect, size: tuple[int, int], image_hw: tuple[int, int],
           placed: np.ndarray) -> tuple[Rect, str]:
    """Where a ``size = (w, h)`` label of ``box`` goes, avoiding the ``placed`` labels ``(P, 4)``."""
    (lw, lh), (h, w) = size, image_hw
    bx1, by1, bx2, by2 = (max(0, v) for v in box)
    tops = {"above": by1 - lh, "inside": by1, "below": min(by2, h - 1) + 1}
    names = [name for name in _PLACEMENTS if 0 <= tops[name] and tops[name] + lh <= h]
    if not names:  # the image is not even two labels tall: keep it in as far as it goes
        top = min(max(by1 - lh, 0), max(h - lh, 0))
        left = min(max(bx1, 0), max(w - lw, 0))
        return (left, top, left + lw - 1, top + lh - 1), "clamped"
    # First the box's left edge at each height; then, at each height, other positions still
    # touching the box's top or bottom edge: right-aligned, or just beside a label in the way.
    candidates = [(name, bx1) for name in names]
    near = placed[(placed[:, 2] >= bx1 - lw) & (placed[:, 0] <= bx2 + lw)
                  & (placed[:, 3] >= min(tops[n] for n in names))
                  & (placed[:, 1] <= max(tops[n] for n in names) + lh - 1)]
    others = [bx2 - lw + 1, *(near[:, 2] + 1).tolist(), *(near[:, 0] - lw).tolist()]
    candidates += [(name, left) for name in names for left in others]
    lefts = np.clip([left for _, left in candidates], 0, max(w - lw, 0))
    keep = (lefts <= bx2) & (lefts + lw - 1 >= bx1)
    keep[:len(names)] = True  # the left-edge positions may be shifted in from the image edge
    rects = np.array([(left, tops[name], left + lw - 1, tops[name] + lh - 1)
                      for (name, _), left in zip(candidates, lefts.tolist())])[keep]
    chosen = [name for (name, _), k in zip(candidates, keep) if k]
    covered = _overlaps(rects, placed) if len(placed) else np.zeros(len(rects), np.int64)
    best = int(np.argmin(covered))  # the first free position, else the one covering least
    return tuple(int(v) for v in rects[best]), chosen[best]


def layout_labels(detections: Detections, image_shape: Sequence[int], *, thickness: int | None = None,
                  font_scale: float | None = None, group_iou: float = GROUP_IOU) -> list[Label]:
    """Where :func:`draw_detections` draws each box and label, without drawing.

    Args:
        detections: as for :func:`draw_detections`.
        image_shape: ``(H, W)`` or ``(H, W, C)`` of the image drawn on.
        thickness, font_scale: as for :func:`draw_detections`.
        group_iou: detections whose boxes have at least this IoU with a better-scoring one
            (identical boxes always) join its box and label instead of getting their own.

    Returns:
        One :class:`Label` per drawn box, in placement order: best score first. Boxes with
        non-finite coordinates are left out.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    thickness = default_thickness(h, w) if thickness is None else max(1, int(thickness))
    font_scale = default_font_scale(h, w) if font_scale is None else float(font_scale)
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(detections.class_ids).reshape(-1)
    names = list(detections.class_names)
    if not len(boxes) == len(scores) == len(class_ids) == len(names):
        raise ValueError(f"detections disagree in length: {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(class_ids)} class ids, {len(names)} names")
    labels: list[Label] = []
    placed = np.zeros((0, 4), np.int64)
    for members in _group(boxes, scores, group_iou):
        best = members[0]
        # Clip to the image so a box far outside it does not overflow OpenCV's int32 maths.
        box = tuple(int(round(v)) for v in np.clip(boxes[best], -1, [w, h, w, h]))
        parts = [f"{names[i] or int(class_ids[i])} {scores[i]:.2f}" for i in members]
        lines, scale = _fit_text(parts, font_scale, w)
        lw, lh = _text_block(lines, scale)[:2]
        rect, placement = _place(box, (lw, lh), (h, w), placed)
        placed = np.vstack([placed, np.array(rect, np.int64)[None]])
        class_id = int(class_ids[best])
        labels.append(Label(text=", ".join(parts), lines=tuple(lines), rect=rect, box=box,
                            placement=placement, members=tuple(members), class_id=class_id,
                            color=class_color(class_id), font_scale=scale))
    return labels


def _draw_label(image: np.ndarray, label: Label) -> None:
    """Draw ``label``'s filled background and text, in place."""
    x1, y1, x2, y2 = label.rect
    cv2.rectangle(image, (x1, y1), (x2, y2), label.color, cv2.FILLED)
    thickness = _text_thickness(label.font_scale)
    _, _, line_h, pad, text_h = _text_block(label.lines, label.font_scale)
    for row, line in enumerate(label.lines):
        cv2.putText(image, line, (x1 + pad, y1 + pad + row * line_h + text_h), _FONT, label.font_scale,
                    _text_color(label.color), thickness, cv2.LINE_AA)


def draw_detections(image_bgr: np.ndarray, detections: Detections, *,
                    thickness: int | None = None, font_scale: float | None = None,
                    group_iou: float = GROUP_IOU) -> np.ndarray:
    """Return a copy of ``image_bgr`` with ``detections`` drawn on it.

    Args:
        image_bgr: ``(H, W, 3)`` uint8 BGR image (a ``(H, W)`` grey image is converted to BGR).
            Never modified.
        detections: has ``boxes`` ``(N, 4)`` xyxy in image pixels, ``scores`` ``(N,)``,
            ``class_ids`` ``(N,)`` and ``class_names`` (one per detection; an empty name is
            shown as the class id). Boxes with non-finite coordinates are skipped.
        thickness: box line width in pixels; default scales with the image size.
        font_scale: OpenCV font scale of the labels; default scales with the image size.
        group_iou: boxes at least this similar share one box and one label (see
            :func:`layout_labels`, which gives the layout this draws).

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
    labels = layout_labels(detections, out.shape, thickness=thickness, font_scale=font_scale,
                           group_iou=group_iou)
    # Least confident first, so the best box and label end up on top where they must overlap;
    # every box before any label, so no box line crosses a label.
    for label in reversed(labels):
        x1, y1, x2, y2 = label.box
        cv2.rectangle(out, (x1, y1), (x2, y2), label.color, thickness)  # axis-aligned: AA adds nothing
    for label in reversed(labels):
        _draw_label(out, label)
    return out
