"""An ONNX Runtime ``CalibrationDataReader`` over preprocessed calibration images."""
from __future__ import annotations

import numpy as np


def make_reader(input_name: str, images: np.ndarray, batch: int = 1):
    """A reader that yields ``{input_name: images[i:i+batch]}`` once over ``images`` ``(N, 3, H, W)``.

    Built on first use so importing this module needs no onnxruntime.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self):
            if self.start >= len(images):
                return None
            chunk = images[self.start:self.start + batch]
            self.start += batch
            return {input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

        def rewind(self) -> None:
            self.start = 0

        def __len__(self) -> int:
            return -(-len(images) // batch)

    return ArrayReader()
