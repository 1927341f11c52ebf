"""Detection with the YoloV3 torch module: preprocess -> forward -> decode + NMS -> image boxes.

This is the PyTorch path of ``detect``. The runtime ``Detector`` (ONNX Runtime / TensorRT)
shares the same numpy pre- and post-processing, so every backend returns the same detections.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..detections import Detections
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, postprocess
from ..preprocess import preprocess
from .yolov3 import YoloV3


class TorchDetector:
    """Run a :class:`YoloV3` on BGR uint8 images (OpenCV convention) and return :class:`Detections`.

    Not thread-safe: one instance per thread (torch modules may be shared read-only, but the
    instance's settings are not locked).
    """

    def __init__(self, model: YoloV3, names: Sequence[str], *, size: tuple[int, int] | None = None,
                 conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, max_det: int = DEFAULT_MAX_DET,
                 mode: str = "letterbox", device: str | torch.device = "cpu"):
        if not model.heads:
            raise ValueError("the model has no [yolo] layers to detect with")
        self.model = model.eval().to(device)
        self.names = list(names)
        self.size = size or model.input_size
        self.conf, self.iou, self.max_det, self.mode, self.device = conf, iou, max_det, mode, torch.device(device)

    @torch.no_grad()
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in each image; boxes come back xyxy in that image's pixels."""
        if not images:
            return []
        blob, transforms = preprocess(images, self.size, self.mode)
        outputs = [t.float().cpu().numpy() for t in self.model(torch.from_numpy(blob).to(self.device))]
        results = postprocess(outputs, self.model.heads, self.size, self.conf, self.iou, self.max_det)
        return [Detections.from_arrays(transform.to_image(boxes), scores, class_ids, self.names)
                for (boxes, scores, class_ids), transform in zip(results, transforms)]

    def detect(self, image: np.ndarray) -> Detections:
        """Detect in one image."""
        return self.detect_batch([image])[0]
