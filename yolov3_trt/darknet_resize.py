"""Darknet's ``resize_image`` of ``byte / 255``, bit-exact and fast, written into a blob's planes.

Darknet resizes with a separable bilinear filter whose sample positions are align-corners
(output column ``c`` samples input ``x = c * (im_w - 1) / (new_w - 1)``), columns first, then
rows, in float32. This module reproduces that arithmetic exactly: the sampled pixels are
gathered with ``cv2.remap`` at whole-pixel positions (an exact copy), converted with a float32
table equal to ``v / 255``, and combined with the same float32 multiplies and adds, block by
block of output rows so the work arrays stay in cache. Geometry (indices, weights, remap maps)
is cached per (source size, output size), since video frames repeat sizes.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import cv2
import numpy as np

_SHRT_MAX = 32767  # cv2.remap needs image and map sides below this


@functools.lru_cache(maxsize=64)
def _axis_samples(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Darknet ``resize_image`` sample positions along one axis.

    Returns ``(i0, i1, frac)``, each ``(dst,)``: output ``j`` is
    ``(1 - frac[j]) * in[i0[j]] + frac[j] * in[i1[j]]``, with Darknet's float32 arithmetic
    (``scale = (float)(src - 1) / (dst - 1)``, ``s = j * scale``, ``i0 = (int)s``, ``frac = s - i0``).
    The last output sample is the last input sample, and a 1-wide input or output uses it too.

    Darknet special-cases the last *column* explicitly; for the last *row* it relies on
    ``(h - 1) * h_scale`` rounding to exactly ``im_h - 1``, which in float32 fails for about 5%
    of size pairs (e.g. 2 -> 42), leaving a near-black bottom row. We apply the column rule to
    both axes rather than reproduce that accident.

    Cached; the arrays are read-only.
    """
    if src == 1 or dst == 1:
        last = np.full(dst, src - 1, dtype=np.intp)
        return _frozen(last, last, np.zeros(dst, dtype=np.float32))
    scale = np.float32(src - 1) / np.float32(dst - 1)
    pos = np.arange(dst, dtype=np.float32) * scale
    i0 = pos.astype(np.intp)  # truncation, as C's (int); pos >= 0
    frac = pos - i0.astype(np.float32)
    i0[-1], frac[-1] = src - 1, np.float32(0.0)
    i1 = np.minimum(i0 + 1, src - 1)
    return _frozen(i0, i1, frac)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, made read-only (they are shared through a cache)."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


# Darknet's ``(float)byte / 255.`` for every byte. A float32 division is correctly rounded, and
# for all 256 values it equals the double quotient rounded to float32 (checked in the tests);
# cv2.LUT with this table is that division, looked up.
_UNIT_TABLE = _frozen(np.arange(256, dtype=np.float32) / np.float32(255.0))[0]


_BLOCK_BYTES = 1 << 19  # float32 work arrays of one block of output rows: sized to stay in L2


@dataclass(frozen=True, eq=False)
class _ResizePlan:
    """Darknet's ``resize_image`` to ``(width, height)`` as read-only index and weight arrays.

    Output rows are computed ``block`` at a time; ``rows`` holds, block after block, the upper
    source rows of the block's output rows, then their lower ones. ``x0``/``x1`` are the left and
    right source columns; ``w*`` the float32 weights ``1 - frac`` and ``frac`` of those samples.
    """

    block: int
    rows: np.ndarray
    x0: np.ndarray
    x1: np.ndarray
    wx0: np.ndarray
    wx1: np.ndarray
    wy0: np.ndarray
    wy1: np.ndarray


@functools.lru_cache(maxsize=32)
def _resize_plan(src_w: int, src_h: int, width: int, height: int) -> _ResizePlan:
    y0, y1, fy = _axis_samples(src_h, height)
    x0, x1, fx = _axis_samples(src_w, width)
    block = max(1, _BLOCK_BYTES // (2 * 2 * width * 3 * 4))  # left and right, 2 rows each, RGB float32
    rows = np.concatenate([np.concatenate([y0[top:top + block], y1[top:top + block]])
                           for top in range(0, height, block)])
    one = np.float32(1.0)
    return _ResizePlan(block, *_frozen(rows, x0, x1, one - fx, fx, (one - fy)[:, None], fy[:, None].copy()))


@functools.lru_cache(maxsize=8)  # 16 bytes per output pixel: 2 MB for 768x576 -> 416x312
def _remap_maps(src_w: int, src_h: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (CV_16SC2, ``(2 * height, width, 2)``) of the left and the right
    samples of :func:`_unit_samples`."""
    plan = _resize_plan(src_w, src_h, width, height)
    maps = np.empty((2, len(plan.rows), width, 2), dtype=np.int16)
    maps[0, ..., 0], maps[1, ..., 0] = plan.x0, plan.x1
    maps[..., 1] = plan.rows[:, None]
    return _frozen(maps[0], maps[1])


_scratch = threading.local()  # per-thread work arrays, reused from block to block and frame to frame


def _work_array(slot: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A reusable per-thread array of ``shape`` (contents undefined), from ``slot``'s buffer.

    Fresh memory costs a page fault per 4 KiB page (half the old implementation's time on a
    small VM), and whether malloc returns fresh memory for megabyte arrays depends on all else
    the process does; so the (block-sized) work arrays are kept.
    """
    size = int(np.prod(shape))
    buffer = getattr(_scratch, slot, None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        setattr(_scratch, slot, buffer)
    return buffer[:size].reshape(shape)


def _unit_samples(image: np.ndarray, plan: _ResizePlan, start: int, stop: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``byte / 255`` of ``image[rows][:, x0]`` and ``image[rows][:, x1]`` for ``rows =
    plan.rows[start:stop]``: two float32 ``(stop - start, w * C)`` per-thread work arrays. The
    gather is exact (``cv2.remap`` with ``INTER_NEAREST`` at integer positions copies
    ``src[y, x]``; numpy beyond remap's size limit), and so is the lookup."""
    src_h, src_w, channels = image.shape
    shape = (stop - start, len(plan.x0), channels)
    unit = []
    for side, x in enumerate((plan.x0, plan.x1)):
        if max(src_w, src_h, len(plan.rows), shape[1]) < _SHRT_MAX:
            xy = _remap_maps(src_w, src_h, shape[1], len(plan.rows) // 2)[side][start:stop]
            work = _work_array(f"u8{side}", shape, np.uint8)
            samples = cv2.remap(image, xy, None, cv2.INTER_NEAREST, dst=work)
        else:
            index = plan.rows[start:stop, None] * src_w + x
            samples = np.take(image.reshape(src_h * src_w, channels), index, axis=0)
        values = cv2.LUT(samples, _UNIT_TABLE, dst=_work_array(f"f32{side}", shape, np.float32))
        unit.append(values.reshape(shape[0], -1))
    return unit[0], unit[1]


def darknet_resize_into(out: np.ndarray, image: np.ndarray, rgb: tuple[int, int, int]) -> None:
    """Darknet's ``resize_image`` of ``byte / 255.`` into ``out`` (a ``(3, height, width)`` float32
    view) from a contiguous ``(H, W, C)`` uint8 image whose channels ``rgb`` are red, green, blue.

    Bit-identical to Darknet's float32 loops: columns first, then rows, each output
    ``(1 - f) * a + f * b`` with every product and the sum rounded to float32 (the order of the
    factors of a product, or of the terms of a sum of two, does not change an IEEE result). The
    arithmetic runs in place on interleaved rows, a cache-sized block at a time.
    """
    _, height, width = out.shape
    channels = image.shape[2]
    plan = _resize_plan(image.shape[1], image.shape[0], width, height)
    wx0, wx1 = np.repeat(plan.wx0, channels), np.repeat(plan.wx1, channels)
    for top in range(0, height, plan.block):
        count = min(plan.block, height - top)
        left, right = _unit_samples(image, plan, 2 * top, 2 * (top + count))
        left *= wx0  # column pass: left * (1 - fx) + right * fx
        right *= wx1
        left += right
        upper, lower = left[:count], left[count:]  # row pass: upper * (1 - fy) + lower * fy
        upper *= plan.wy0[top:top + count]
        lower *= plan.wy1[top:top + count]
        upper += lower
        pixels = upper.reshape(count, width, channels)
        for plane, channel in zip(out[:, top:top + count], rgb):
            plane[...] = pixels[..., channel]
