"""Small models and image folders for the quantization tests (random weights, a few images)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

NAMES = ["a", "b"]


def tiny_onnx(folder: Path, size: int = 128, seed: int = 0, cfg: str = "yolov3-tiny", flavour: str = "raw") -> Path:
    """A 2-class model with random weights whose heads behave like a trained one's, as FP32 ONNX
    (raw heads, or with the ``end2end`` or ``plugin`` tail)."""
    from helpers import random_model

    from yolov3_trt.export.onnx_export import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    model = random_model(folder, cfg, seed, num_classes=len(NAMES), name=f"{cfg}-{seed}.weights")
    path = folder / (f"{cfg}-{size}-fp32.onnx" if flavour == "raw" else f"{cfg}-{size}-{flavour}-fp32.onnx")
    export_onnx(model, path, NAMES, size=(size, size), flavour=flavour)
    return path


def write_images(folder: Path, count: int, seed: int = 0, size: tuple[int, int] = (150, 110)) -> list[Path]:
    """``count`` PNGs of textured noise with filled shapes (non-square, so letterboxing pads)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w, h = size
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        for _ in range(3):
            x, y = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 30)), y + int(rng.integers(10, 30))), color, -1)
        path = folder / f"img{i:03d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def rel_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return max(float(np.abs(g - e).max() / np.abs(e).max()) for g, e in zip(got, expected))
