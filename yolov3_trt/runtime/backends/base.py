"""The interface every inference backend implements (Polygraphy-style runner lifecycle)."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod

import numpy as np

from ...errors import YoloV3TrtError
from ...metadata import ModelMetadata


class Backend(ABC):
    """Runs one model on preprocessed batches.

    ``infer(blob)`` takes ``(B, 3, H, W)`` float32 RGB in [0, 1] at the model's input size and
    returns the graph's outputs as numpy arrays: the raw heads for a ``raw`` model, or
    ``num_dets, boxes, scores, classes`` for an ``end2end`` one. Backends load their model in
    ``__init__`` and free it in ``close()``; a closed backend refuses to run.
    """

    name: str = ""

    def __init__(self, path: str | os.PathLike, metadata: ModelMetadata, max_batch: int | None):
        self.path, self.metadata, self.max_batch = os.fspath(path), metadata, max_batch
        self.closed = False

    @property
    def description(self) -> str:
        """What runs the model, for logs ("onnxruntime (CPUExecutionProvider)")."""
        return self.name

    def check_input(self, blob: np.ndarray) -> None:
        """YoloV3TrtError naming the model when ``blob`` does not fit its input."""
        width, height = self.metadata.input_size
        if self.closed:
            raise YoloV3TrtError(f"{self.path}: the {self.name} backend is closed")
        if not isinstance(blob, np.ndarray) or blob.dtype != np.float32:
            got = blob.dtype if isinstance(blob, np.ndarray) else type(blob).__name__
            raise YoloV3TrtError(f"{self.path}: input must be float32, got {got}")
        if blob.ndim != 4:
            raise YoloV3TrtError(f"{self.path}: input must be (B, 3, {height}, {width}), got rank {blob.ndim}")
        if blob.shape[1:] != (3, height, width):
            raise YoloV3TrtError(f"{self.path}: input must be (B, 3, {height}, {width}), got {tuple(blob.shape)}")
        if self.max_batch is not None and blob.shape[0] > self.max_batch:
            raise YoloV3TrtError(f"{self.path}: batch {blob.shape[0]} exceeds the model's {self.max_batch}")

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        """Validate ``blob`` and run the model."""
        self.check_input(blob)
        return self._infer(np.ascontiguousarray(blob))

    @abstractmethod
    def _infer(self, blob: np.ndarray) -> list[np.ndarray]:
        """Run the model on a validated, contiguous batch."""

    def close(self) -> None:
        """Free the model; idempotent."""
        self.closed = True
