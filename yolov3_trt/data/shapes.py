"""Procedural scenes for the synthetic dataset: coloured shapes on textured, noisy backgrounds.

A scene is rendered in three steps:

1. **Geometry.** Each object is one of :data:`SHAPE_NAMES`, with a random centre (anywhere in the
   image, so objects may be cut by the border), a log-uniform size from ``MIN_OBJECT_SIZE`` px to
   ``MAX_OBJECT_FRACTION`` of the shorter image side, a rotation and a mild aspect stretch. Its
   pixels are a hard (not anti-aliased) mask, so "the object's pixels" is exact.
2. **Occlusion.** Objects are stacked in drawing order; later ones hide earlier ones. An object's
   *visible fraction* is its pixels that end up visible in the image (not covered by a later
   object, not outside the image) over all its own pixels. Objects below
   ``MIN_VISIBLE_FRACTION`` count as almost fully hidden and are removed from the scene before
   anything is painted, so the image never holds unlabelled fragments; removing an object only
   uncovers others, so one pass suffices. Every remaining object is labelled with the tight box of
   its *visible* pixels (a partly hidden object gets the box of what can be seen, as in COCO).
3. **Paint.** A background (gradient, low-frequency colour blobs, a stripe/checker/grain texture,
   thin lines), then each object's visible pixels in a colour picked, out of a few random
   candidates, to differ most from what lies under it (so no object melts into its surroundings),
   with a slight shading gradient; finally Gaussian sensor noise over everything.

Everything draws from one ``numpy.random.Generator``, so a scene is a pure function of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
MIN_OBJECT_SIZE = 10  # px, the object's diameter before the aspect stretch
MAX_OBJECT_FRACTION = 0.4  # of the shorter image side
MIN_VISIBLE_FRACTION = 0.25
EMPTY_IMAGE_PROBABILITY = 0.05  # background-only images, so a detector also learns "nothing here"
_COLOUR_CANDIDATES = 8
_SHIFT = 4  # cv2 fixed-point bits for sub-pixel polygon vertices


@dataclass(frozen=True, eq=False)
class ShapeMask:
    """One object's own pixels: ``mask`` (bool, ``(h, w)``) placed with its top-left at ``(x0, y0)``.

    The mask is not clipped to the image (``x0``, ``y0`` may be negative), so ``mask.sum()`` is
    the object's full pixel count, the denominator of its visible fraction.
    """

    cls: int
    x0: int
    y0: int
    mask: np.ndarray


@dataclass(frozen=True)
class SceneObject:
    """A labelled object: class id, tight ``(x1, y1, x2, y2)`` box of its visible pixels in pixel-edge
    coordinates (``x2`` is one past the last column), the BGR colour it was painted with (before shading
    and noise), its visible fraction and the contrast score of its colour against what lies under it."""

    cls: int
    box: tuple[int, int, int, int]
    colour: tuple[int, int, int]
    visible_fraction: float
    contrast: float


@dataclass(frozen=True)
class Scene:
    """A rendered image with ``image`` BGR uint8 ``(H, W, 3)``, ``owner`` int16 ``(H, W)`` (index into
    ``objects`` of the object each pixel shows, -1 for background) and the labelled ``objects``."""

    image: np.ndarray
    owner: np.ndarray
    objects: list[SceneObject]


def _unit_polygons(cls: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The shape as polygons of radius ~1 around the origin; a second polygon is a hole."""
    circle = np.stack([np.cos(t := np.linspace(0, 2 * np.pi, 72, endpoint=False)), np.sin(t)], axis=1)
    name = SHAPE_NAMES[cls]
    if name == "circle":
        return [circle]
    if name == "square":
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.75]
    if name == "triangle":
        a = np.deg2rad([-90, 30, 150])
        return [np.stack([np.cos(a), np.sin(a)], axis=1)]
    if name == "star":
        a = np.deg2rad(np.arange(10) * 36 - 90)
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return [np.stack([r * np.cos(a), r * np.sin(a)], axis=1)]
    if name == "cross":
        w = 0.3
        return [np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w],
                          [-1, w], [-1, -w], [-w, -w]], np.float64)]
    return [circle, circle * rng.uniform(0.45, 0.65)]  # ring: outer edge, then the hole


def shape_mask(cls: int, cx: float, cy: float, radius: float, angle: float, aspect: float,
               rng: np.random.Generator) -> ShapeMask:
    """Rasterise shape ``cls`` centred at ``(cx, cy)`` px with ``radius`` px, rotated by ``angle``
    radians, stretched by ``aspect`` (x by ``sqrt(aspect)``, y by ``1/sqrt(aspect)``) before rotating."""
    stretch = np.array([np.sqrt(aspect), 1 / np.sqrt(aspect)]) * radius
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    polygons = [(p * stretch) @ rotation.T + (cx, cy) for p in _unit_polygons(cls, rng)]
    x0, y0 = np.floor(polygons[0].min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(polygons[0].max(axis=0)).astype(int) + 2
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for value, polygon in zip((1, 0), polygons):
        points = np.round((polygon - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [points], value, lineType=cv2.LINE_8, shift=_SHIFT)
    return ShapeMask(cls, int(x0), int(y0), mask.astype(bool))


def _clip(m: ShapeMask, width: int, height: int) -> tuple[slice, slice, np.ndarray]:
    """The image window a mask covers and the part of the mask inside it."""
    h, w = m.mask.shape
    ix0, iy0 = max(m.x0, 0), max(m.y0, 0)
    ix1, iy1 = min(m.x0 + w, width), min(m.y0 + h, height)
    if ix1 <= ix0 or iy1 <= iy0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), bool)
    return slice(iy0, iy1), slice(ix0, ix1), m.mask[iy0 - m.y0:iy1 - m.y0, ix0 - m.x0:ix1 - m.x0]


def compose(masks: list[ShapeMask], width: int, height: int) -> np.ndarray:
    """int16 ``(height, width)`` map of the index of the topmost mask at each pixel (-1: none)."""
    owner = np.full((height, width), -1, np.int16)
    for k, m in enumerate(masks):
        rows, cols, inside = _clip(m, width, height)
        owner[rows, cols][inside] = k
    return owner


def visible_fractions(masks: list[ShapeMask], owner: np.ndarray) -> np.ndarray:
    """float64 ``(K,)``: visible pixels of each mask in ``owner`` over the mask's own pixel count."""
    visible = np.bincount(owner.ravel().astype(np.int64) + 1, minlength=len(masks) + 1)[1:]
    total = np.array([max(int(m.mask.sum()), 1) for m in masks])
    return visible / total


def resolve_occlusion(masks: list[ShapeMask], width: int, height: int,
                      min_visible: float = MIN_VISIBLE_FRACTION) -> tuple[list[ShapeMask], np.ndarray, np.ndarray]:
    """Drop the objects that are almost fully hidden (visible fraction < ``min_visible``).

    Returns the kept masks (in drawing order), their owner map (:func:`compose`) and their
    visible fractions. Removing objects only uncovers the others, so every kept one stays above
    ``min_visible``.
    """
    owner = compose(masks, width, height)
    fractions = visible_fractions(masks, owner)
    keep = [m for m, f in zip(masks, fractions) if f >= min_visible]
    if len(keep) < len(masks):
        owner = compose(keep, width, height)
        fractions = visible_fractions(keep, owner)
    return keep, owner, fractions


def tight_box(owner: np.ndarray, k: int, m: ShapeMask) -> tuple[int, int, int, int]:
    """Pixel-edge ``(x1, y1, x2, y2)`` of the pixels of ``owner`` equal to ``k`` (within ``m``'s window)."""
    rows, cols, _ = _clip(m, owner.shape[1], owner.shape[0])
    here = owner[rows, cols] == k
    ys, xs = np.flatnonzero(here.any(axis=1)), np.flatnonzero(here.any(axis=0))
    x0, y0 = cols.start, rows.start
    return x0 + int(xs[0]), y0 + int(ys[0]), x0 + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1


def _texture(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A grey float32 ``(H, W)`` texture: stripes, a checker board or coarse grain."""
    height, width = y.shape[0], x.shape[1]
    amplitude = np.float32(rng.uniform(6, 20))
    kind = rng.integers(0, 3)
    if kind == 0:
        phi, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        scale = np.float32(2 * np.pi / period)
        u = x * np.float32(width * np.cos(phi) * scale) + y * np.float32(height * np.sin(phi) * scale)
        return amplitude * np.sin(u)
    if kind == 1:
        cell = np.float32(rng.uniform(6, 30))
        checker = (np.floor(x * np.float32(width) / cell) + np.floor(y * np.float32(height) / cell)) % 2
        return amplitude * (checker * np.float32(2) - np.float32(1))
    grain = rng.standard_normal((max(height // 4, 1), max(width // 4, 1)), dtype=np.float32) * amplitude
    return cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A float32 ``(height, width, 3)`` BGR background in roughly [0, 255] (module docstring, step 3).

    Built as three planes with float32 scalars: numpy is several times slower on interleaved
    ``(H, W, 3)`` broadcasts and on float64 scalars, and this runs once per image.
    """
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    theta = rng.uniform(0, 2 * np.pi)
    t = x * np.float32(np.cos(theta)) + y * np.float32(np.sin(theta))
    t -= t.min()
    t /= max(float(t.max()), 1e-6)
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    blobs = rng.standard_normal((int(rng.integers(2, 8)), int(rng.integers(2, 8)), 3), dtype=np.float32)
    blobs = cv2.resize(blobs * np.float32(rng.uniform(10, 40)), (width, height), interpolation=cv2.INTER_CUBIC)
    grey = _texture(rng, x, y)
    planes = [t * (c1[i] - c0[i]) + c0[i] + blobs[:, :, i] + grey for i in range(3)]
    image = cv2.merge(planes)
    for _ in range(int(rng.integers(0, 9))):  # thin lines: clutter that is not an object
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(image, p1, p2, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def _pick_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[np.ndarray, float]:
    """The candidate colour whose 10th-percentile distance to the pixels ``under`` it is largest."""
    candidates = rng.integers(0, 256, (_COLOUR_CANDIDATES, 3)).astype(np.float32)
    step = max(len(under) // 512, 1)
    sample = under[::step]
    distance = np.linalg.norm(sample[None, :, :] - candidates[:, None, :], axis=2)
    scores = np.percentile(distance, 10, axis=1)
    best = int(np.argmax(scores))
    return candidates[best], float(scores[best])


def _random_masks(rng: np.random.Generator, width: int, height: int, max_objects: int) -> list[ShapeMask]:
    if max_objects <= 0 or rng.random() < EMPTY_IMAGE_PROBABILITY:
        return []
    side = min(width, height)
    lo, hi = np.log(MIN_OBJECT_SIZE), np.log(max(MAX_OBJECT_FRACTION * side, MIN_OBJECT_SIZE))
    masks = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(0, len(SHAPE_NAMES)))
        radius = float(np.exp(rng.uniform(lo, hi))) / 2
        masks.append(shape_mask(cls, rng.uniform(0, width), rng.uniform(0, height), radius,
                                rng.uniform(0, 2 * np.pi), float(np.exp(rng.uniform(-0.3, 0.3))), rng))
    return masks


def render(rng: np.random.Generator, width: int, height: int, max_objects: int) -> Scene:
    """Render one scene (module docstring): up to ``max_objects`` objects on a ``width x height`` image."""
    canvas = background(rng, width, height)
    masks, owner, fractions = resolve_occlusion(_random_masks(rng, width, height, max_objects), width, height)
    objects = []
    for k, m in enumerate(masks):
        rows, cols, _ = _clip(m, width, height)
        here = owner[rows, cols] == k
        window = canvas[rows, cols]
        colour, contrast = _pick_colour(rng, window[here])
        # shading: a linear ramp across the object, up to +-15 %, so objects are not flat stickers
        ys, xs = np.nonzero(here)
        phi, gain = rng.uniform(0, 2 * np.pi), rng.uniform(-0.15, 0.15)
        ramp = (xs - xs.mean()) * np.cos(phi) + (ys - ys.mean()) * np.sin(phi)
        ramp = ramp / max(float(np.abs(ramp).max()), 1.0)
        window[ys, xs] = colour[None, :] * (1 + gain * ramp[:, None]).astype(np.float32)
        objects.append(SceneObject(m.cls, tight_box(owner, k, m), tuple(int(v) for v in colour),
                                   float(fractions[k]), contrast))
    noise = rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    image = cv2.add(canvas, noise, dtype=cv2.CV_8U)  # rounds and saturates to [0, 255]
    return Scene(image, owner, objects)
