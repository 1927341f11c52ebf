"""The tensorrt backend: clean refusals on a machine it cannot use, and its CUDA logic on fakes.

A stand-in ``tensorrt`` module (only ``__version__``, no Runtime) shows the order of checks: if
the backend ever got as far as deserialising, the stand-in would fail with AttributeError
instead of the one-line error asserted here. The second half runs the backend on a fake
cuda-python runtime (host memory, streams that record work while capturing, graphs that replay
it) and fake TensorRT engine/context objects (fake_cuda.py beside this file): its stream,
CUDA-graph, fallback and multi-GPU logic. TensorRT itself never runs in these tests (tests/gpu/
runs it).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import types

import numpy as np
import pytest
from fake_cuda import FAKE_SHAPE, FakeCudaRuntime, FakeEngine, _Err, fake_network

from yolov3_trt import Detector, YoloV3TrtError
from yolov3_trt.errors import FileError
from yolov3_trt.fileio import file_sha256
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.runtime.backends import trt_backend
from yolov3_trt.tensorrt.device import CudaDevice, probe_cuda_device
from yolov3_trt.tensorrt.sidecar import EngineCompatibilityError, EngineInfo, write_sidecar

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


# ---- the backend's CUDA logic against a fake cuda-python runtime and fake TensorRT objects ----------------
#
# The fake runtime and TensorRT objects are in fake_cuda.py beside this file.


@pytest.fixture
def fake_stack(fake_tensorrt, monkeypatch, tmp_path):
    """(make_backend, rt): TensorRTBackend on the fake runtime; ``make_backend(device=..., under_capture=...,
    **kwargs)`` writes an engine with a sidecar for that device and opens it."""
    rt = FakeCudaRuntime()
    engines: list[FakeEngine] = []

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            device, under_capture = plan.decode().split()
            engines.append(FakeEngine(rt, int(device), under_capture))
            return engines[-1]

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    fake_tensorrt.Logger = Logger
    fake_tensorrt.init_libnvinfer_plugins = lambda logger, namespace: True
    fake_tensorrt.Runtime = lambda logger: Runtime(logger)
    fake_tensorrt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    fake_tensorrt.nptype = np.dtype
    monkeypatch.setattr(trt_backend, "cuda_runtime", lambda: rt)
    monkeypatch.setattr(trt_backend, "probe_cuda_device",
                        lambda index: (CudaDevice(index, "Orin", (8, 7), 1 << 30, 12060), ""))

    def make(device: str = "auto", under_capture: str = "ok", **kwargs):
        index = 0 if device == "auto" else int(device.split(":")[1])
        path = tmp_path / f"m{len(list(tmp_path.glob('*.engine')))}.engine"
        path.write_bytes(f"{index} {under_capture}".encode())
        _sidecar(path)
        return trt_backend.TensorRTBackend(path, device=device, **kwargs)

    make.engines = engines
    return make, rt


def _blob(seed: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, *FAKE_SHAPE), dtype=np.float32)


def test_fake_backend_runs_plain_and_frees_everything(fake_stack):
    make, rt = fake_stack
    backend = make()
    for seed, batch in ((0, 2), (1, 2), (2, 4), (3, 1)):
        blob = _blob(seed, batch)
        (head,) = backend.infer(blob)
        np.testing.assert_array_equal(head, fake_network(blob))
    backend.close()
    assert not rt.memory and set(rt.streams) == {0, 1}  # buffers and the backend's stream are gone
    backend.close()  # idempotent


def test_own_stream_is_non_blocking(fake_stack):
    """A blocking stream (cudaStreamCreate) synchronises with the legacy default stream."""
    make, rt = fake_stack
    backend = make()
    assert rt.count("cudaStreamCreate") == 0
    assert rt.calls.count(("cudaStreamCreateWithFlags", (rt.cudaStreamNonBlocking,))) == 1
    assert rt.streams[backend._stream]["flags"] == rt.cudaStreamNonBlocking
    backend.close()


def test_cuda_graph_captured_once_replayed_and_dropped_on_a_new_batch(fake_stack):
    make, rt = fake_stack
    backend = make(cuda_graph=True)
    for seed in range(4):  # plain run, capture (+ launch), replay, replay
        blob = _blob(seed)
        np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
    assert rt.count("cudaStreamBeginCapture") == 1 and rt.launches == 3 and backend.cuda_graph
    assert list(backend._graphs) == [2] and len(rt.graphs) == len(rt.executables) == 1
    blob = _blob(9, 3)
    np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))  # new shape: plain run first
    assert not backend._graphs and not rt.graphs and not rt.executables
    backend.close()
    assert not rt.capturing()


@pytest.mark.parametrize("failure", ["refuse", "invalidate", "raise", "end_capture", "end_capture_no_graph",
                                     "instantiate"])
def test_failed_capture_falls_back_to_plain_enqueue_for_good(fake_stack, caplog, failure):
    """Whatever fails in a capture: nothing leaks, one warning, correct output now and later."""
    make, rt = fake_stack
    under_capture = failure if failure in ("refuse", "invalidate", "raise") else "ok"
    if failure.startswith("end_capture"):
        rt.fail["cudaStreamEndCapture"] = _Err.cudaErrorStreamCaptureInvalidated
        rt.end_capture_graph = failure == "end_capture"
    elif failure == "instantiate":
        rt.fail["cudaGraphInstantiate"] = _Err.cudaErrorInvalidValue
    backend = make(under_capture=under_capture, cuda_graph=True)
    with caplog.at_level(logging.WARNING, logger=trt_backend.__name__):
        for seed in range(5):  # plain, failed capture + plain, then plain for good
            blob = _blob(seed)
            np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
        blob = _blob(7, 3)  # another batch size does not try again either
        np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CUDA graph capture failed at batch 2" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert backend.cuda_graph is False and not backend._graphs
    assert rt.count("cudaStreamBeginCapture") == rt.count("cudaStreamEndCapture") == 1
    assert not rt.graphs and not rt.executables and not rt.capturing()  # destroyed, capture ended
    assert rt.launches == 0
    backend.close()


@pytest.mark.parametrize("stream", [0, 1])
def test_cuda_graph_on_the_legacy_default_stream_is_refused(fake_stack, stream):
    make, rt = fake_stack
    with pytest.raises(YoloV3TrtError) as err:
        make(cuda_graph=True, stream=stream)
    message = str(err.value)
    assert "cannot capture on the legacy default stream" in message and "\n" not in message
    assert not rt.memory and rt.count("cudaMalloc") == 0  # refused before anything was allocated
    backend = make(stream=stream)  # without graphs the default stream is fine
    blob = _blob(0)
    np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
    backend.close()
    assert set(rt.streams) == {0, 1}  # the caller's stream is not destroyed


def test_caller_stream_used_for_capture(fake_stack):
    make, rt = fake_stack
    _, stream = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
    backend = make(cuda_graph=True, stream=stream)
    for seed in range(3):
        blob = _blob(seed)
        np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
    assert all(args[0] == stream for name, args in rt.calls if name == "cudaStreamBeginCapture")
    backend.close()
    assert stream in rt.streams


def test_backends_on_two_gpus_in_one_thread(fake_stack):
    """Each call makes its own device current, whatever the last call (or the caller) left current."""
    make, rt = fake_stack
    first, second = make(device="cuda:0"), make(device="cuda:1", cuda_graph=True)
    assert rt.current == 1
    for seed in range(4):
        for backend in (first, second):
            blob = _blob(seed)
            np.testing.assert_array_equal(backend.infer(blob)[0], fake_network(blob))
        rt.cudaSetDevice(0)  # the caller's own work on device 0 between calls
    assert second._graphs and rt.launches == 3  # captured and launched, then replayed twice, on device 1
    second.close()  # device 0 is current: close frees on device 1
    first.close()
    assert not rt.memory and set(rt.streams) == {0, 1}
    assert not rt.foreign_frees
