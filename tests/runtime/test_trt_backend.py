"""The tensorrt backend refuses cleanly, before TensorRT touches the engine, on a machine it cannot use.

A stand-in ``tensorrt`` module (only ``__version__``, no Runtime) shows the order of checks: if
the backend ever got as far as deserialising, the stand-in would fail with AttributeError
instead of the one-line error asserted here. TensorRT itself never runs in these tests.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest

from yolov3_trt import Detector, YoloV3TrtError
from yolov3_trt.build.device import CudaDevice, probe_cuda_device
from yolov3_trt.build.sidecar import EngineCompatibilityError, EngineInfo, write_sidecar
from yolov3_trt.fileio import file_sha256
from yolov3_trt.errors import FileError
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.runtime.backends import trt_backend

META = ModelMetadata(flavour="raw", input_size=(64, 64), names=("a",), anchors=(((10.0, 14.0),),),
                     strides=((32, 32),))


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"plan bytes")
    return path


@pytest.fixture
def fake_tensorrt(monkeypatch):
    module = types.ModuleType("tensorrt")
    module.__version__ = "10.3.0.30"
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def _sidecar(engine, version="10.3.0.30"):
    write_sidecar(engine, EngineInfo(tensorrt_version=version, gpu_name="Orin", compute_capability=(8, 7),
                                     precision="fp16", input_size=(64, 64), batch=(1, 1, 1), flavour="raw",
                                     names=("a",), anchors=META.anchors, engine_sha256=file_sha256(engine),
                                     onnx_file="m.onnx", model=META.to_props()))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_detector_on_an_engine_without_tensorrt(engine):
    with pytest.raises(YoloV3TrtError) as err:
        Detector(engine)
    assert str(err.value) == f"{engine}: needs the tensorrt package, which is not installed"
    with pytest.raises(YoloV3TrtError, match="needs the tensorrt package"):
        Detector(engine, backend="tensorrt")


def test_engine_without_sidecar(engine, fake_tensorrt):
    with pytest.raises(FileError, match="no sidecar m.engine.json beside it"):
        Detector(engine)


@pytest.mark.skipif(probe_cuda_device()[0] is not None, reason="a CUDA device is present")
def test_no_gpu_is_refused_before_deserialising(engine, fake_tensorrt):
    _sidecar(engine)
    with pytest.raises(YoloV3TrtError) as err:
        Detector(engine)
    assert str(err.value).startswith(f"{engine}: a TensorRT engine runs only on a GPU: ")
    assert "\n" not in str(err.value)


def test_version_gpu_and_hash_checked_before_deserialising(engine, fake_tensorrt, monkeypatch):
    orin = CudaDevice(0, "Orin", (8, 7), 1 << 30, 12060)
    monkeypatch.setattr(trt_backend, "probe_cuda_device", lambda index: (orin, ""))
    _sidecar(engine, version="10.13.0.35")
    with pytest.raises(EngineCompatibilityError, match="built with TensorRT 10.13.0.35, this is TensorRT 10.3.0.30"):
        Detector(engine)
    _sidecar(engine)
    monkeypatch.setattr(trt_backend, "probe_cuda_device", lambda index: (CudaDevice(0, "T4", (7, 5), 1, 1), ""))
    with pytest.raises(EngineCompatibilityError, match="incompatible device"):
        Detector(engine)
    monkeypatch.setattr(trt_backend, "probe_cuda_device", lambda index: (orin, ""))
    engine.write_bytes(b"changed plan")
    with pytest.raises(EngineCompatibilityError, match="differs from its sidecar's"):
        Detector(engine)
    with pytest.raises(YoloV3TrtError, match="device must be auto, cuda or cuda:N"):
        Detector(engine, device="cpu")


def test_outputs_are_read_in_the_onnx_order():
    order = trt_backend._output_order
    assert order(["head10", "head2", "head0"], "raw") == ["head0", "head2", "head10"]
    assert order(["scores", "num_dets", "classes", "boxes"], "end2end") == ["num_dets", "boxes", "scores", "classes"]
    assert order(["x", "y"], "end2end") == ["x", "y"]
