"""Images to network input, exactly as Darknet prepares them.

Darknet's ``detect`` loads an image as RGB float in [0, 1] (byte / 255), letterboxes it
(``letterbox_image``: keep the aspect ratio, resize with its own ``resize_image``, centre on a
canvas of 0.5 grey) and feeds it planar (CHW). This module reproduces those steps with numpy and
OpenCV only, so the runtime needs no torch.

Darknet's ``resize_image`` is a separable bilinear resize with *align-corners* sampling: output
column ``c`` samples input ``x = c * (im_w - 1) / (new_w - 1)`` (the last output column is the
last input column), columns first, then rows, in float32. OpenCV's ``resize`` samples pixel
centres instead and ``remap`` quantises positions to 1/32 pixel, so neither matches; the resize
(:mod:`yolov3_trt.darknet_resize`) is written out with the same float32 arithmetic, and OpenCV only
does what is exact: an
integer-index gather (``remap`` with ``INTER_NEAREST``) and a table lookup (``LUT``).

Speed (the runtime calls :func:`preprocess` on every frame): one exact gather takes, straight
from the caller's BGR/RGB/gray/BGRA image, the left and right samples of each output pixel's
upper and lower rows (nothing else is read, no ``to_rgb`` copy); ``byte / 255`` is a 256-entry
float32 table; both passes run in place on contiguous interleaved rows; the last step writes the
RGB planes straight into the blob (no canvas, no transpose, only the border is painted grey); and
the per-geometry index and weight arrays are cached, as video frames repeat one size.

OpenCV's kernel (``kernel="opencv"``, :class:`~yolov3_trt.vocab.ResizeKernel`): the same geometry
(size, pads, :class:`ImageTransform`, grey border), but the image part is ``cv2.resize`` with
``INTER_LINEAR`` (pixel-centre sampling, fixed-point weights) on the uint8 image, whose channel
planes are then divided by 255 straight into the blob: about 8x faster than Darknet's resize
(dog.jpg to 416: 0.22-0.33 vs 1.9-2.7 ms, median of 200 runs). The two sample at up to half a
source pixel apart (pixel centres vs align-corners), so the pixels differ little on average
(mean 0.005-0.01 on Darknet's photos at 416) but by up to ~0.7 at sharp edges; detections of
Darknet's yolov3-tiny keep their classes, boxes move by up to ~1.6 network pixels.

Sizes are always ``(width, height)``; arrays are ``(H, W, C)`` unless stated otherwise.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from yolov3_trt.darknet_resize import darknet_resize_into
from yolov3_trt.errors import ImageReadError, YoloV3TrtError
from yolov3_trt.vocab import ResizeKernel, ResizeMode

logger = logging.getLogger(__name__)

GREY = 0.5  # Darknet's letterbox fill value
_BYTE_MAX = np.float32(255)  # kernel "opencv": byte / 255, exactly the float32 quotient Darknet's kernel uses


@dataclass(frozen=True)
class ImageTransform:
    """Where an image went in the network input: ``net_pixel = image_pixel * scale + pad``.

    Coordinates are continuous pixel coordinates (the left edge of column 0 is x = 0).

    Attributes:
        src_width, src_height: size of the original image in pixels.
        scale_x, scale_y: network pixels per image pixel (``new_w / src_w`` for a letterbox).
        pad_x, pad_y: offset of the resized image in the network input, in network pixels.
    """

    src_width: int
    src_height: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes_xyxy_net: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from network-input pixels to image pixels.

        The result is float32 ``(N, 4)`` xyxy, clipped to ``[0, src_width] x [0, src_height]``.
        """
        boxes = _as_boxes(boxes_xyxy_net)
        out = np.empty_like(boxes)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0.0, self.src_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, self.src_height, out=out[:, 1::2])
        return out.astype(np.float32)

    def to_net(self, boxes_xyxy_image: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from image pixels to network-input pixels (float32, unclipped)."""
        boxes = _as_boxes(boxes_xyxy_image)
        out = np.empty_like(boxes)
        out[:, 0::2] = boxes[:, 0::2] * self.scale_x + self.pad_x
        out[:, 1::2] = boxes[:, 1::2] * self.scale_y + self.pad_y
        return out.astype(np.float32)


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` float64 copy of ``boxes``; ValueError on any other shape."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` BGR uint8 (OpenCV's convention).

    Grayscale images are replicated to three channels, an alpha channel is dropped and 16-bit
    images are reduced to 8 bits, as Darknet's loader (stb_image with 3 channels) does. Unlike
    Darknet, the EXIF orientation of a photo is applied, so boxes match what viewers show.

    Raises:
        ImageReadError: the file is missing, unreadable, or not a decodable image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        # fromfile + imdecode rather than imread: imread cannot open non-ASCII paths on Windows.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(path, f"cannot read file ({err.strerror or err})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(path, "not a decodable image (empty, truncated or unsupported format)")
    return image


def to_rgb(image: np.ndarray, channel_order: Literal["bgr", "rgb"] = "bgr") -> np.ndarray:
    """Return ``image`` as a contiguous ``(H, W, 3)`` uint8 RGB array.

    Accepts ``(H, W)`` and ``(H, W, 1)`` grayscale, ``(H, W, 3)`` colour and ``(H, W, 4)`` colour
    with alpha (dropped), in ``channel_order`` (``"bgr"`` is OpenCV's). uint16 images are reduced
    to 8 bits by keeping the high byte, as stb_image (Darknet's loader) does.

    Raises:
        YoloV3TrtError: not an array, wrong number of dimensions or channels, empty, or a dtype
            other than uint8/uint16.
    """
    image, _ = _source_image(image, channel_order)
    # cv2.cvtColor: SIMD copies, several times faster than numpy's channel-strided ones.
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if channel_order == "bgr" else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channel_order == "bgr" else image.copy()


def _source_image(image: np.ndarray, channel_order: str) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Validate an input image (see :func:`to_rgb`) without converting its channels.

    Returns the image as a contiguous ``(H, W, C)`` uint8 array, ``C`` in (1, 3, 4), and which of
    its channels hold red, green and blue.
    """
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if image is None:
        raise YoloV3TrtError("image is None (an image that failed to load, e.g. cv2.imread returned None?)")
    if not isinstance(image, np.ndarray):
        raise YoloV3TrtError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise YoloV3TrtError("image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                             f"got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise YoloV3TrtError(f"image is empty: shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise YoloV3TrtError(f"image must be uint8 (or uint16), got {image.dtype}; "
                             "convert floats in [0, 1] with (image * 255).round().astype(np.uint8)")
    if image.shape[2] == 1:
        rgb = (0, 0, 0)
    else:
        rgb = (2, 1, 0) if channel_order == "bgr" else (0, 1, 2)
    return np.ascontiguousarray(image), rgb


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    """``size`` as ``(width, height)`` of positive ints; ValueError otherwise."""
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return width, height


def _check_rgb_uint8(rgb_uint8: np.ndarray) -> None:
    """YoloV3TrtError unless ``rgb_uint8`` is a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(rgb_uint8, np.ndarray):
        raise YoloV3TrtError(f"expected an (H, W, 3) uint8 RGB array, got {type(rgb_uint8).__name__}")
    if rgb_uint8.dtype != np.uint8 or rgb_uint8.ndim != 3 or rgb_uint8.shape[2] != 3 or rgb_uint8.size == 0:
        got = f"{rgb_uint8.dtype} {rgb_uint8.shape}"
        raise YoloV3TrtError(f"expected a non-empty (H, W, 3) uint8 RGB image, got {got}; see to_rgb()")


def letterbox_size(src_size: Sequence[int], size: Sequence[int]) -> tuple[int, int]:
    """Darknet's ``letterbox_image`` resized size ``(new_w, new_h)`` for an image in a net input.

    ``if (float)net_w / im_w < (float)net_h / im_h`` the width fills the input and
    ``new_h = im_h * net_w / im_w`` (integer division), else the height fills it. Sizes are
    ``(width, height)``. A side that would round to 0 (extreme aspect ratios) is kept at 1 pixel,
    where Darknet would fail.
    """
    im_w, im_h = _check_size(src_size)
    net_w, net_h = _check_size(size)
    if np.float32(net_w) / np.float32(im_w) < np.float32(net_h) / np.float32(im_h):
        new_w, new_h = net_w, (im_h * net_w) // im_w
    else:
        new_w, new_h = (im_w * net_h) // im_h, net_h
    return max(new_w, 1), max(new_h, 1)


def letterbox(rgb_uint8: np.ndarray, size: Sequence[int],
              kernel: Literal["darknet", "opencv"] = "darknet") -> tuple[np.ndarray, ImageTransform]:
    """Darknet's ``letterbox_image``: resize keeping aspect ratio, centre on 0.5 grey.

    Args:
        rgb_uint8: ``(H, W, 3)`` uint8 RGB image.
        size: network input ``(net_w, net_h)``.
        kernel: ``"darknet"`` (Darknet's ``resize_image``, bit-exact) or ``"opencv"``
            (``cv2.resize`` ``INTER_LINEAR`` on the uint8 image; the same geometry).

    Returns:
        ``(net_h, net_w, 3)`` float32 RGB in [0, 1], and the :class:`ImageTransform` with
        ``scale = new / src`` per axis and ``pad = ((net_w - new_w) // 2, (net_h - new_h) // 2)``,
        the offset at which the image is actually placed. (Darknet's ``correct_yolo_boxes`` uses
        ``(net - new) / 2.`` instead, half a network pixel off when the difference is odd.)
    """
    return _interleaved("letterbox", rgb_uint8, size, kernel)


def resize(rgb_uint8: np.ndarray, size: Sequence[int],
           kernel: Literal["darknet", "opencv"] = "darknet") -> tuple[np.ndarray, ImageTransform]:
    """Stretch an ``(H, W, 3)`` uint8 RGB image to ``size = (net_w, net_h)`` with Darknet's resize
    (or, ``kernel="opencv"``, ``cv2.resize``'s ``INTER_LINEAR``).

    Returns ``(net_h, net_w, 3)`` float32 RGB in [0, 1] and its :class:`ImageTransform` (no pad).
    """
    return _interleaved("resize", rgb_uint8, size, kernel)


def _check_kernel(kernel: str) -> None:
    if kernel not in ResizeKernel.values():
        raise ValueError(f"kernel must be one of {ResizeKernel.describe()}, got {kernel!r}")


def _interleaved(mode: str, rgb_uint8: np.ndarray, size: Sequence[int],
                 kernel: str = "darknet") -> tuple[np.ndarray, ImageTransform]:
    """:func:`_place` an RGB image in a planar canvas of ``size``; return it as ``(H, W, 3)``."""
    _check_kernel(kernel)
    _check_rgb_uint8(rgb_uint8)
    net_w, net_h = _check_size(size)
    planes = np.empty((3, net_h, net_w), dtype=np.float32)
    transform = _place(planes, np.ascontiguousarray(rgb_uint8), (0, 1, 2), mode, kernel)
    return np.ascontiguousarray(planes.transpose(1, 2, 0)), transform


def _opencv_resize_into(out: np.ndarray, image: np.ndarray, rgb: tuple[int, int, int]) -> None:
    """``cv2.resize`` (``INTER_LINEAR``) of a contiguous ``(H, W, C)`` uint8 ``image``, whose channels
    ``rgb`` are red, green and blue, divided by 255 into ``out`` (a ``(3, height, width)`` float32 view).

    The fastest of the variants measured on dog.jpg -> 416x312 (split + ``np.divide`` into the
    planes, 0.26 ms; the same with ``np.multiply`` by 1/255, ``cv2.LUT`` into the planes, one
    strided numpy multiply from the transposed image: 0.27-0.33 ms). Division rather than a
    multiply by 1/255: the same cost, and each byte becomes exactly the value Darknet's kernel
    gives it (255 -> 1.0).
    """
    _, height, width = out.shape
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:  # a one-channel image comes back (h, w): grey in all three planes
        np.divide(resized, _BYTE_MAX, out=out[0])
        out[1] = out[0]
        out[2] = out[0]
        return
    channels = cv2.split(resized)  # contiguous uint8 planes: the divide then streams
    for plane, channel in zip(out, rgb):
        np.divide(channels[channel], _BYTE_MAX, out=plane)


def _place(planes: np.ndarray, image: np.ndarray, rgb: tuple[int, int, int], mode: str,
           kernel: str = "darknet") -> ImageTransform:
    """Letterbox or stretch (``mode``) ``image``, whose channels ``rgb`` are red, green and blue,
    into ``planes`` ``(3, net_h, net_w)`` with the resize ``kernel``."""
    _, net_h, net_w = planes.shape
    src_h, src_w = image.shape[:2]
    new_w, new_h = letterbox_size((src_w, src_h), (net_w, net_h)) if mode == "letterbox" else (net_w, net_h)
    pad_x, pad_y = (net_w - new_w) // 2, (net_h - new_h) // 2
    bottom, right = pad_y + new_h, pad_x + new_w
    planes[:, :pad_y] = GREY  # only the border (if any): the image covers the rest
    planes[:, bottom:] = GREY
    planes[:, pad_y:bottom, :pad_x] = GREY
    planes[:, pad_y:bottom, right:] = GREY
    resize_into = _opencv_resize_into if kernel == "opencv" else darknet_resize_into
    resize_into(planes[:, pad_y:bottom, pad_x:right], image, rgb)
    return ImageTransform(src_width=src_w, src_height=src_h, scale_x=new_w / src_w,
                          scale_y=new_h / src_h, pad_x=float(pad_x), pad_y=float(pad_y))


def preprocess(images: Sequence[np.ndarray], size: Sequence[int],
               mode: Literal["letterbox", "resize"] = "letterbox",
               channel_order: Literal["bgr", "rgb"] = "bgr",
               kernel: Literal["darknet", "opencv"] = "darknet") -> tuple[np.ndarray, list[ImageTransform]]:
    """Turn images into one network input batch.

    Args:
        images: each ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 (see
            :func:`to_rgb`); sizes may differ.
        size: network input ``(net_w, net_h)``.
        mode: ``"letterbox"`` (Darknet's ``detect``) or ``"resize"`` (plain stretch).
        channel_order: ``"bgr"`` (OpenCV) or ``"rgb"``, for 3- and 4-channel images.
        kernel: the resize: ``"darknet"`` (Darknet's exact float bilinear ``resize_image``: the
            C Darknet's input, bit for bit) or ``"opencv"`` (``cv2.resize`` ``INTER_LINEAR`` on the
            uint8 image, about 8x faster; the same geometry and transforms, pixels on average
            within 0.01 of Darknet's).

    Returns:
        A contiguous float32 blob ``(B, 3, net_h, net_w)``, RGB in [0, 1], and one
        :class:`ImageTransform` per image, to map boxes back with ``to_image``.
    """
    if mode not in ResizeMode.values():
        raise ValueError(f"mode must be one of {ResizeMode.describe()}, got {mode!r}")
    _check_kernel(kernel)
    net_w, net_h = _check_size(size)
    blob = np.empty((len(images), 3, net_h, net_w), dtype=np.float32)
    transforms: list[ImageTransform] = []
    for index, image in enumerate(images):
        # Straight from the caller's channel layout into the blob's RGB planes: no to_rgb copy.
        transforms.append(_place(blob[index], *_source_image(image, channel_order), mode, kernel))
    return blob, transforms
