"""The Detector composes: it takes a built backend; the registry; no process-wide settings."""
from __future__ import annotations

import dataclasses
import importlib
import inspect

import numpy as np
import pytest
from helpers import random_model

from yolov3_trt import Detector
from yolov3_trt.errors import DetectorArgumentError, YoloV3TrtError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.model.checkpoint import save_checkpoint
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.runtime.backends import REGISTRY, BackendEntry, backend_class
from yolov3_trt.runtime.backends.ort_backend import OnnxRuntimeBackend
from yolov3_trt.runtime.backends.torch_backend import TorchBackend

SIZE = (96, 64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose")
    model = random_model(folder, seed=5)
    export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=SIZE)
    save_checkpoint(folder / "tiny.pt", model, COCO_NAMES)
    return {"folder": folder, "model": model}


def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)


def test_a_built_backend_gives_what_the_path_gives_and_is_owned(files) -> None:
    path = files["folder"] / "raw.onnx"
    built = OnnxRuntimeBackend(path, threads=1)
    with Detector(built, conf=0.01) as composed, Detector(path, "onnxruntime", conf=0.01) as loaded:
        assert composed.backend == loaded.backend and composed._backend is built
        a, b = composed.detect(image()), loaded.detect(image())
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert built.closed  # the Detector closed what it was given


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "cpu"}, "device='cpu'"),
    ({"threads": 2}, "threads=2"),
    ({"backend": "openvino"}, "backend='openvino'"),
    ({"backend_options": {"arena": False}}, "backend_options={'arena': False}"),
])
def test_loading_settings_beside_a_built_backend_are_refused(files, kwargs, words) -> None:
    built = OnnxRuntimeBackend(files["folder"] / "raw.onnx")
    with pytest.raises(DetectorArgumentError) as err:
        Detector(built, **kwargs)
    assert words in str(err.value) and "already built; give these to its constructor" in str(err.value)
    assert not built.closed  # still the caller's
    with Detector(built, backend="onnxruntime") as fine:  # its own name is not a clash
        assert fine.input_size == SIZE


def test_closed_backend_and_refused_settings(files) -> None:
    built = OnnxRuntimeBackend(files["folder"] / "raw.onnx")
    with pytest.raises(YoloV3TrtError, match="unknown postprocessor"):
        Detector(built, postprocessor="cuda")
    assert not built.closed
    built.close()
    with pytest.raises(DetectorArgumentError, match="the onnxruntime backend given is closed"):
        Detector(built)


def test_torch_refuses_threads_and_never_sets_them(files, monkeypatch) -> None:
    import torch

    def refuse(_n):
        raise AssertionError("library code called torch.set_num_threads")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    for make in (lambda: Detector(files["folder"] / "tiny.pt", threads=2),
                 lambda: Detector.from_model(files["model"], COCO_NAMES, threads=2)):
        with pytest.raises(DetectorArgumentError, match=r"threads=2: torch has no per-model thread count; call "
                                                        r"torch.set_num_threads\(2\) in the application"):
            make()
    with Detector(files["folder"] / "tiny.pt") as detector:
        assert detector.backend == "torch (cpu)"


def test_from_model_is_the_constructor_on_a_torch_backend(files) -> None:
    class Mine(Detector):
        pass

    with Mine.from_model(files["model"], COCO_NAMES, size=SIZE) as detector:
        assert type(detector) is Mine and isinstance(detector._backend, TorchBackend)
        assert detector.input_size == SIZE
    built = TorchBackend(model=files["model"], names=COCO_NAMES, size=SIZE)
    with Detector(built) as direct:
        assert direct.names == tuple(COCO_NAMES)


def test_registry_entries_are_frozen_and_match_the_constructors() -> None:
    for name, entry in REGISTRY.items():
        assert isinstance(entry, BackendEntry)
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.package = "other"  # type: ignore[misc]
        try:
            module = importlib.import_module(entry.module)
        except ImportError:  # a backend whose module needs its package at import time
            continue
        cls = getattr(module, entry.class_name)
        assert backend_class(name) is cls and cls.name == name
        keywords = {p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY}
        assert {"device", "threads"} <= keywords
        assert set(entry.options) == keywords - {"device", "threads", "model", "names"}, name


def test_unknown_backend_options_name_what_the_backend_takes(files) -> None:
    with pytest.raises(YoloV3TrtError, match=r"backend_options cuda_graph not understood by the onnxruntime "
                                             r"backend \(it takes: optimization, arena\)"):
        Detector(files["folder"] / "raw.onnx", backend_options={"cuda_graph": True})
