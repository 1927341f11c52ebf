"""INT8 calibration sets: which images, preprocessed how, and a cache of calibrated models.

- :mod:`.sampler`: pick N representative images from a folder, an image list, a dataset or a
  list of files (seeded; stratified by class when labels exist).
- :mod:`.images`: load them exactly as the runtime does (:func:`yolov3_trt.preprocess.preprocess`,
  the model's letterbox mode and size) into one float32 array, with a progress bar.
- :mod:`.cache`: calibrated models kept under a key of model hash + image set + method + size,
  so a repeated build skips calibration.

No torch and no quantization toolkit is imported here; ``calibration/README.md`` at the top of
the repository says how calibration sets are made and kept.
"""
from __future__ import annotations

from .cache import CalibrationCache, calibration_key
from .images import load_calibration_images
from .sampler import DEFAULT_NUM_IMAGES, CalibrationError, sample_images

__all__ = ["DEFAULT_NUM_IMAGES", "CalibrationCache", "CalibrationError", "calibration_key",
           "load_calibration_images", "sample_images"]
