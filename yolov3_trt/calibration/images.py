"""Calibration images into network input, exactly as the runtime prepares a frame.

The blob comes from :func:`yolov3_trt.preprocess.preprocess` with the model's own size and
resize mode (``letterbox`` by default, as ``Detector`` uses), so the activation ranges that
calibration measures are the ranges inference will see.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..errors import ImageReadError
from ..preprocess import preprocess, read_image
from .sampler import CalibrationError


def load_calibration_images(paths: Sequence[str | os.PathLike], size: tuple[int, int], mode: str = "letterbox",
                            progress: bool = True) -> np.ndarray:
    """Read and preprocess ``paths`` into one float32 array ``(N, 3, height, width)``, RGB in [0, 1].

    ``size`` is the network input ``(width, height)``; ``mode`` ``"letterbox"`` or ``"resize"``
    (the model's metadata says which).

    Raises:
        CalibrationError: an image that cannot be read or decoded (the message names it).
    """
    width, height = size
    out = np.empty((len(paths), 3, height, width), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc="calibration images", unit="img", disable=None if progress else True)):
        try:
            image = read_image(path)
        except ImageReadError as err:
            raise CalibrationError(err.path, f"calibration image: {err.problem}") from None
        out[i] = preprocess([image], (width, height), mode=mode)[0][0]
    return out
