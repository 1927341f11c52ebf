"""PyTorch backend: the YoloV3 module itself, from a checkpoint or an in-memory model.

torch is imported here, lazily (the backend registry imports this module only when chosen).
``threads`` is refused: torch's thread count is process-wide (``torch.set_num_threads``), not a
property of one model, so a library that set it would change every other model and thread in
the process. The application sets it, once, where it owns the process.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ...errors import DetectorArgumentError
from ...metadata import ModelMetadata
from .base import Backend


class TorchBackend(Backend):
    """Runs a :class:`~yolov3_trt.model.yolov3.YoloV3` in eval mode under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, path: str | os.PathLike | None = None, *, model=None, names: Sequence[str] | None = None,
                 size: tuple[int, int] | None = None, device: str = "auto", threads: int | None = None):
        if threads is not None:
            raise DetectorArgumentError(f"threads={threads!r}: torch has no per-model thread count; call "
                                        f"torch.set_num_threads({threads!r}) in the application instead")
        import torch

        from ...model.checkpoint import load_checkpoint

        if model is None:
            model, names, _ = load_checkpoint(path)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        source = os.fspath(path) if path is not None else model.cfg.source
        super().__init__(source, ModelMetadata.from_model(model, names, size, source=source), None)

    @property
    def description(self) -> str:
        return f"torch ({self.device.type})"

    def _infer(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(blob).to(self.device))
        return [o.float().cpu().numpy() for o in outputs]

    def close(self) -> None:
        self.model = None
        super().close()
