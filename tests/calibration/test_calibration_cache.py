"""Calibration cache keys change with everything that determines a calibration, and only with that."""
from __future__ import annotations

import cv2
import numpy as np

from yolov3_trt.calibration import CalibrationCache, calibration_key


def _files(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model bytes")
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.full((8, 8, 3), i, np.uint8))
        images.append(path)
    return model, images


def test_key_depends_on_model_images_method_size_target_settings(tmp_path):
    model, images = _files(tmp_path)
    base = dict(method="entropy", size=(64, 64), target="cpu", settings="v1")
    key = calibration_key(model, images, **base)
    assert key == calibration_key(model, list(images), **base)
    variants = [dict(base, method="max"), dict(base, size=(96, 64)), dict(base, target="tensorrt"),
                dict(base, settings="v2")]
    keys = {calibration_key(model, images, **v) for v in variants}
    assert key not in keys and len(keys) == len(variants)
    assert calibration_key(model, images[:2], **base) != key
    assert calibration_key(model, images[::-1], **base) != key  # order is part of the set as used
    model.write_bytes(b"other model")
    assert calibration_key(model, images, **base) != key
    model.write_bytes(b"model bytes")
    assert calibration_key(model, images, **base) == key
    cv2.imwrite(str(images[0]), np.full((8, 8, 3), 99, np.uint8))  # same name, other content
    assert calibration_key(model, images, **base) != key


def test_fetch_miss_then_store_then_hit(tmp_path):
    cache = CalibrationCache(tmp_path / "cache")
    dst = tmp_path / "out.onnx"
    assert cache.lookup("k" * 64) is None
    assert not cache.fetch("k" * 64, dst) and not dst.exists()
    produced = tmp_path / "produced.onnx"
    produced.write_bytes(b"calibrated")
    stored = cache.store("k" * 64, produced, {"method": "entropy"})
    assert stored.read_bytes() == b"calibrated"
    assert '"method": "entropy"' in stored.with_suffix(".json").read_text()
    assert cache.fetch("k" * 64, dst) and dst.read_bytes() == b"calibrated"
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temp files left
