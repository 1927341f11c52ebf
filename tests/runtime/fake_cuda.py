"""A fake cuda-python runtime and fake TensorRT engine/context objects, for the tensorrt backend's
tests (test_trt_backend.py): its stream, CUDA-graph, fallback and multi-GPU logic without a GPU.

FakeCudaRuntime implements the runtime calls the backend makes, on host memory: "device"
allocations are host buffers, copies are memmoves, work on a stream runs at once unless the
stream is capturing (then it is recorded), a graph launch replays the recorded work. Each
stream belongs to the device that was current when it was created, and work submitted while
another device is current fails, as a kernel launch into another device's stream does.
"""
from __future__ import annotations

import ctypes
import enum

import numpy as np


class _Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInvalidResourceHandle = 400
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901
    cudaErrorStreamCaptureImplicit = 906


class FakeCudaRuntime:
    cudaError_t = _Err
    cudaStreamDefault, cudaStreamNonBlocking = 0, 1
    cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1, "cudaMemcpyDeviceToHost": 2})
    cudaStreamCaptureMode = enum.IntEnum("cudaStreamCaptureMode", {"cudaStreamCaptureModeGlobal": 0,
                                                                   "cudaStreamCaptureModeThreadLocal": 1,
                                                                   "cudaStreamCaptureModeRelaxed": 2})

    def __init__(self, devices: int = 2):
        self.devices, self.current = devices, 0
        self.calls: list[tuple[str, tuple]] = []
        self.memory: dict[int, ctypes.Array] = {}
        self.owner: dict[int, int] = {}        # allocation -> the device current when it was made
        self.foreign_frees: list[int] = []     # allocations freed while another device was current
        self.streams: dict[int, dict] = {0: {"device": None, "flags": 0, "capture": None},  # legacy default
                                         1: {"device": None, "flags": 0, "capture": None}}  # cudaStreamLegacy
        self.graphs: dict[int, list] = {}      # live graphs: handle -> recorded work
        self.executables: dict[int, list] = {}
        self.fail: dict[str, _Err] = {}        # call name -> the error it returns
        self.end_capture_graph = True          # whether a failed capture still returns a graph
        self.launches = 0
        self._next = 0x1000

    def _handle(self) -> int:
        self._next += 0x10
        return self._next

    def _call(self, name: str, *args) -> _Err:
        self.calls.append((name, args))
        return self.fail.get(name, _Err.cudaSuccess)

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)

    def capturing(self) -> list[int]:
        return [h for h, s in self.streams.items() if s["capture"] is not None]

    # device, errors
    def cudaSetDevice(self, index):
        err = self._call("cudaSetDevice", index)
        if err == _Err.cudaSuccess:
            self.current = int(index)
        return (err,)

    def cudaGetErrorString(self, err):
        return _Err.cudaSuccess, _Err(err).name.encode()

    def cudaGetLastError(self):
        self._call("cudaGetLastError")
        return (_Err.cudaSuccess,)

    # memory
    def _alloc(self, name, nbytes):
        err = self._call(name, nbytes)
        if err != _Err.cudaSuccess:
            return err, None
        buffer = ctypes.create_string_buffer(int(nbytes))
        self.memory[ctypes.addressof(buffer)] = buffer
        self.owner[ctypes.addressof(buffer)] = self.current
        return err, ctypes.addressof(buffer)

    def cudaMallocHost(self, nbytes):
        return self._alloc("cudaMallocHost", nbytes)

    def cudaMalloc(self, nbytes):
        return self._alloc("cudaMalloc", nbytes)

    def cudaFree(self, ptr):
        self.memory.pop(int(ptr))
        if self.owner.pop(int(ptr)) != self.current:
            self.foreign_frees.append(int(ptr))
        return (self._call("cudaFree", ptr),)

    cudaFreeHost = cudaFree

    def submit(self, stream: int, work) -> _Err:
        """Run ``work`` on ``stream`` (or record it when the stream is capturing)."""
        state = self.streams.get(int(stream))
        if state is None or (state["device"] is not None and state["device"] != self.current):
            return _Err.cudaErrorInvalidResourceHandle  # a stream of another device (or none)
        if state["capture"] is not None:
            state["capture"]["work"].append(work)
        else:
            work()
        return _Err.cudaSuccess

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        err = self._call("cudaMemcpyAsync", dst, src, nbytes, kind, stream)
        return (err if err != _Err.cudaSuccess else
                self.submit(stream, lambda: ctypes.memmove(int(dst), int(src), int(nbytes))),)

    # streams
    def _create_stream(self, flags):
        handle = self._handle()
        self.streams[handle] = {"device": self.current, "flags": flags, "capture": None}
        return _Err.cudaSuccess, handle

    def cudaStreamCreate(self):
        self._call("cudaStreamCreate")
        return self._create_stream(self.cudaStreamDefault)

    def cudaStreamCreateWithFlags(self, flags):
        self._call("cudaStreamCreateWithFlags", flags)
        return self._create_stream(flags)

    def cudaStreamDestroy(self, stream):
        self.streams.pop(int(stream))
        return (self._call("cudaStreamDestroy", stream),)

    def cudaStreamSynchronize(self, stream):
        err = self._call("cudaStreamSynchronize", stream)
        state = self.streams[int(stream)]
        if state["capture"] is not None:  # not allowed under capture: it invalidates the capture
            state["capture"]["invalid"] = True
            return (_Err.cudaErrorStreamCaptureUnsupported,)
        return (err,)

    def cudaStreamBeginCapture(self, stream, mode):
        err = self._call("cudaStreamBeginCapture", stream, mode)
        state = self.streams[int(stream)]
        if int(stream) in (0, 1):
            return (_Err.cudaErrorStreamCaptureUnsupported,)
        if state["capture"] is not None:
            return (_Err.cudaErrorInvalidValue,)
        if err == _Err.cudaSuccess:
            state["capture"] = {"work": [], "invalid": False}
        return (err,)

    def cudaStreamEndCapture(self, stream):
        err = self._call("cudaStreamEndCapture", stream)
        state = self.streams[int(stream)]
        capture, state["capture"] = state["capture"], None
        if capture is None:
            return _Err.cudaErrorInvalidValue, None
        if capture["invalid"]:
            err = _Err.cudaErrorStreamCaptureInvalidated
        if err != _Err.cudaSuccess and not self.end_capture_graph:
            return err, None
        handle = self._handle()
        self.graphs[handle] = capture["work"]
        return err, handle

    # graphs
    def cudaGraphInstantiate(self, graph, flags):
        err = self._call("cudaGraphInstantiate", graph, flags)
        if err != _Err.cudaSuccess:
            return err, None
        handle = self._handle()
        self.executables[handle] = list(self.graphs[int(graph)])
        return err, handle

    def cudaGraphLaunch(self, executable, stream):
        self._call("cudaGraphLaunch", executable, stream)
        self.launches += 1
        work = self.executables[int(executable)]
        return (self.submit(stream, lambda: [w() for w in work]),)

    def cudaGraphDestroy(self, graph):
        self.graphs.pop(int(graph))
        return (self._call("cudaGraphDestroy", graph),)

    def cudaGraphExecDestroy(self, executable):
        self.executables.pop(int(executable))
        return (self._call("cudaGraphExecDestroy", executable),)


FAKE_SHAPE = (3, 64, 64)       # the engine's input (META: 64x64)
FAKE_HEAD = (6, 2, 2)          # one head, one anchor, one class, stride 32


def fake_network(blob: np.ndarray) -> np.ndarray:
    """What the fake engine computes: a head whose values depend on each image."""
    base = blob.reshape(len(blob), -1)[:, :24] * 10.0 + np.arange(24, dtype=np.float32)
    return base.reshape(len(blob), *FAKE_HEAD).astype(np.float32)


class FakeContext:
    """An execution context: the tensor addresses and input shape, and an enqueue that runs
    :func:`fake_network` on the stream. ``under_capture`` says what enqueue does while the
    stream is capturing: ``ok``, ``refuse`` (returns False, capture still valid), ``invalidate``
    (synchronises, which invalidates the capture, and returns False) or ``raise``."""

    def __init__(self, rt: FakeCudaRuntime, device: int, under_capture: str):
        self.rt, self.device, self.under_capture = rt, device, under_capture
        self.shape = (4, *FAKE_SHAPE)
        self.addresses: dict[str, int] = {}
        self.enqueues = 0

    def set_input_shape(self, name, shape):
        self.shape = tuple(shape)
        return 1 <= self.shape[0] <= 4 and self.shape[1:] == FAKE_SHAPE

    def get_tensor_shape(self, name):
        return self.shape if name == "images" else (self.shape[0], *FAKE_HEAD)

    def set_tensor_address(self, name, address):
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream):
        self.enqueues += 1
        if self.rt.current != self.device:
            return False  # TensorRT's kernels for this device cannot run with another device current
        state = self.rt.streams[int(stream)]
        if state["capture"] is not None and self.under_capture != "ok":
            if self.under_capture == "raise":
                raise RuntimeError("plugin enqueue failed")
            if self.under_capture == "invalidate":
                self.rt.cudaStreamSynchronize(stream)
            return False
        shape, source, target = self.shape, self.addresses["images"], self.addresses["head0"]

        def run():
            count = int(np.prod(shape))
            blob = np.ctypeslib.as_array((ctypes.c_float * count).from_address(source)).reshape(shape)
            out = fake_network(blob)
            ctypes.memmove(target, out.ctypes.data, out.nbytes)

        return self.rt.submit(stream, run) == _Err.cudaSuccess


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, rt, device, under_capture):
        self.rt, self.device, self.under_capture = rt, device, under_capture
        self.contexts: list[FakeContext] = []

    def get_tensor_name(self, i):
        return ("images", "head0")[i]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "images" else "OUTPUT"

    def get_tensor_shape(self, name):
        return (-1, *FAKE_SHAPE) if name == "images" else (-1, *FAKE_HEAD)

    def get_tensor_profile_shape(self, name, profile):
        return [(1, *FAKE_SHAPE), (2, *FAKE_SHAPE), (4, *FAKE_SHAPE)]

    def get_tensor_dtype(self, name):
        return np.float32

    def create_execution_context(self):
        self.contexts.append(FakeContext(self.rt, self.device, self.under_capture))
        return self.contexts[-1]
