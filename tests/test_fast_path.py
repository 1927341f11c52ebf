"""``--cfg/--weights`` runs on ONNX Runtime through a cached export (the fast path), PyTorch on request."""
from __future__ import annotations

import argparse

import numpy as np
from helpers import random_model

from yolov3_trt.cli import fast_path
from yolov3_trt.cli.models import build_detector


def _args(weights, **change) -> argparse.Namespace:
    values = dict(model=None, cfg="yolov3-tiny", weights=str(weights), checkpoint=None, classes=None, names=None,
                  size=(160, 160), backend="auto", conf=0.05, iou=0.45, max_det=50)
    return argparse.Namespace(**{**values, **change})


def test_cached_export_runs_on_onnxruntime_and_equals_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOV3_TRT_CACHE", str(tmp_path / "cache"))
    random_model(tmp_path, "yolov3-tiny")
    weights = tmp_path / "yolov3-tiny.weights"
    image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    with build_detector(_args(weights)) as fast, build_detector(_args(weights, backend="torch")) as slow:
        assert fast.backend.startswith("onnxruntime") and slow.backend.startswith("torch")
        a, b = fast.detect(image), slow.detect(image)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].name.startswith("yolov3-tiny-160x160-")
    stamp = cached[0].stat().st_mtime_ns
    with build_detector(_args(weights)):  # second run: the cached file, not a new export
        pass
    assert [p.stat().st_mtime_ns for p in (tmp_path / "cache" / "onnx").glob("*.onnx")] == [stamp]
    with build_detector(_args(weights, size=(192, 192))):  # another size: another entry
        pass
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2
    assert fast_path.cache_dir() == tmp_path / "cache" / "onnx"
