"""Helpers every test module shares (import them as ``from helpers import ...``): paths to the
official Darknet files beside the checkout, and a random model written through a Darknet file."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DARKNET = SHARED / "darknet"
OFFICIAL_CFGS = sorted((DARKNET / "cfg").glob("*.cfg"))
IMAGES = sorted((DARKNET / "images").glob("*.jpg"))


def random_model(folder: Path, cfg: str = "yolov3-tiny", seed: int = 0, *, num_classes: int | None = None,
                 name: str | None = None):
    """An eval-mode ``YoloV3`` whose random weights (heads scaled to behave like a trained model's,
    ``head_gain=0.15``) went through the Darknet file ``folder/name`` (default ``<cfg>.weights``),
    so every reader of that file sees the same numbers. Imports torch: call it from fixtures."""
    from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
    from yolov3_trt.model.yolov3 import YoloV3

    model = YoloV3.from_cfg(cfg, num_classes=num_classes).eval()
    weights = Path(folder) / (name or f"{cfg}.weights")
    write_darknet_weights(weights, model.network, random_darknet_weights(model.network, seed, head_gain=0.15))
    return model.load_darknet_weights(weights)
