"""TensorRT backend: runs a plan built by ``python -m yolov3_trt.build`` with cuda-python.

Order of checks, so that a wrong machine gets a sentence instead of a segfault: TensorRT
importable, the engine's sidecar readable, a usable CUDA device (probed with cuda-python, never
through TensorRT), the sidecar's TensorRT version and GPU equal to this machine's, the engine's
SHA-256 equal to the sidecar's; only then is the plan deserialised.

Memory: one pinned host buffer and one device buffer per I/O tensor, sized for the optimisation
profile's largest batch, allocated once. A call copies the batch in (async, on the backend's
stream), sets the input shape when the batch size changes (``set_input_shape``), runs
``execute_async_v3``, copies the outputs back and synchronises the stream. With
``cuda_graph=True`` the enqueue is captured as a CUDA graph on the second call at a batch size
(TensorRT needs one plain run at a shape first) and replayed while the batch size stays: less
launch overhead for the small kernels of yolov3-tiny. A graph holds the context's state at
capture, so a batch-size change (``set_input_shape``) drops it and the new size captures anew.
Not every engine can be captured (TensorRT's NMS layer in an end2end graph has a data-dependent
shape; a plugin may synchronise): when a capture fails (``execute_async_v3`` refuses under
capture, ``cudaStreamEndCapture`` or ``cudaGraphInstantiate`` fails, or anything raises), the
capture is ended, whatever it created is destroyed, one warning is logged and the backend runs
plain ``execute_async_v3`` from then on (``cuda_graph`` becomes False); that call's output comes
from a plain run, so it is still right.

Streams: pass ``stream=`` a raw ``cudaStream_t`` handle as an int to run on the caller's stream
(``torch.cuda.current_stream().cuda_stream``, CuPy's ``stream.ptr``, pycuda's
``stream.handle``); otherwise the backend creates and owns one, non-blocking
(``cudaStreamNonBlocking``: it does not synchronise with the legacy default stream 0).
CUDA cannot capture on the legacy default stream, so ``cuda_graph=True`` with ``stream=0`` (or
``cudaStreamLegacy``, 1) is refused at construction with a one-line error.

Devices: ``device="cuda:N"`` runs on GPU N. The device is made current (``cudaSetDevice``) at
construction and again at the start of every call and in ``close()``, so backends on different
GPUs can be used from one thread; a call leaves GPU N current on the calling thread.

Threads: one execution context per backend, and a context must not run two inferences at once.
The Detector's lock serialises calls on one instance; for parallel inference create one Detector
(hence one context, stream and buffer set) per thread.

Errors: a user error (no TensorRT, no GPU, a wrong device string, an engine for another
TensorRT or GPU) raises a :class:`~yolov3_trt.errors.YoloV3TrtError`; a CUDA call or TensorRT
enqueue failing on a valid request raises :class:`~yolov3_trt.errors.EnvironmentFailure`, one
line naming the engine and the call.
"""
from __future__ import annotations

import ctypes
import logging
import os

import numpy as np

from yolov3_trt.tensorrt.device import cuda_runtime, error_text, probe_cuda_device, tensorrt_module
from yolov3_trt.tensorrt.sidecar import check_compatible, check_engine_hash, read_sidecar

from ...errors import EnvironmentFailure, FileError, YoloV3TrtError
from .base import Backend

logger = logging.getLogger(__name__)


# cudaStreamLegacy is ((cudaStream_t)0x1); 0 is the legacy default stream unless per-thread default streams
_LEGACY_STREAMS = (0, 1)


def _handle(value) -> int:
    """The address behind a cuda-python handle (``cudaGraph_t`` etc.) or an int; 0 for NULL."""
    try:
        return int(value)
    except (TypeError, ValueError):  # a handle type without __int__: assume a real one
        return 1


def _device_index(device: str) -> int:
    if device in ("auto", "cuda"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise YoloV3TrtError(f"the tensorrt backend runs on a CUDA device: device must be auto, cuda or cuda:N, "
                         f"not {device!r}")


def _output_order(names: list[str], flavour: str) -> list[str]:
    """Outputs in the order the Detector reads them (the ONNX's): heads by index, or EfficientNMS's."""
    if flavour == "raw" and all(n.startswith("head") and n[4:].isdigit() for n in names):
        return sorted(names, key=lambda n: int(n[4:]))
    expected = ["num_dets", "boxes", "scores", "classes"]
    return expected if flavour != "raw" and sorted(names) == sorted(expected) else names


class _Buffer:
    """A pinned host array and a device allocation of the same size."""

    def __init__(self, rt, check, shape: tuple[int, ...], dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.nbytes = max(int(np.prod(shape)) * self.dtype.itemsize, 1)
        self.host_ptr = check(rt.cudaMallocHost(self.nbytes), "cudaMallocHost")
        try:
            self.device_ptr = check(rt.cudaMalloc(self.nbytes), "cudaMalloc")
        except EnvironmentFailure:  # not in the backend's buffers yet: close() would not free it
            rt.cudaFreeHost(self.host_ptr)
            raise
        ctype = np.ctypeslib.as_ctypes_type(self.dtype)
        flat = np.ctypeslib.as_array(ctypes.cast(int(self.host_ptr), ctypes.POINTER(ctype)),
                                     (self.nbytes // self.dtype.itemsize,))
        self.host = flat

    def free(self, rt) -> None:
        rt.cudaFree(self.device_ptr)
        rt.cudaFreeHost(self.host_ptr)


class TensorRTBackend(Backend):
    """Runs a TensorRT engine (``.engine``/``.plan``) that has a yolov3_trt sidecar."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None,
                 stream: int | None = None, cuda_graph: bool = False, verify_hash: bool = True):
        del threads  # a CPU setting; TensorRT runs on the GPU
        if cuda_graph and stream is not None and int(stream) in _LEGACY_STREAMS:
            raise YoloV3TrtError(f"{os.fspath(path)}: cuda_graph=True cannot capture on the legacy default stream "
                                 f"{int(stream)} (CUDA forbids it): pass a created stream, "
                                 "or none for the backend's own")
        trt_module, reason = tensorrt_module()
        if trt_module is None:
            raise YoloV3TrtError(f"{os.fspath(path)}: the tensorrt backend needs TensorRT: {reason}")
        info = read_sidecar(path)
        index = _device_index(device)
        found, reason = probe_cuda_device(index)
        if found is None:
            raise YoloV3TrtError(f"{os.fspath(path)}: a TensorRT engine runs only on a GPU: {reason}")
        check_compatible(path, info, str(trt_module.__version__), found)
        try:
            with open(path, "rb") as f:
                plan = f.read()  # one read: hashed, then deserialised
        except OSError as err:
            raise FileError(path, f"cannot be read ({err.strerror or err})") from None
        if verify_hash:
            check_engine_hash(path, info, plan)
        metadata = info.model_metadata(path)
        import tensorrt as trt  # importable: checked above

        self._rt = rt = cuda_runtime()
        self._buffers: dict[str, _Buffer] = {}
        self._graphs: dict[int, tuple[object, object]] = {}
        self._stream, self._own_stream, self._context, self._engine = None, False, None, None
        self._device_index = index
        self.cuda_graph = cuda_graph
        self._shape_ran = False  # a plain enqueue has run since the last set_input_shape
        super().__init__(path, metadata, None)
        try:
            self._check(rt.cudaSetDevice(index), "cudaSetDevice")
            self.device = found
            self._trt_logger = trt.Logger(trt.Logger.WARNING)
            trt.init_libnvinfer_plugins(self._trt_logger, "")
            self._runtime = trt.Runtime(self._trt_logger)
            if info.version_compatible:
                self._runtime.engine_host_code_allowed = True  # lean runtime code stored in the plan
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            del plan
            if self._engine is None:
                raise FileError(path, "TensorRT could not deserialise the engine (its log above says why)")
            self._context = self._engine.create_execution_context()
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            if len(inputs) != 1:
                raise FileError(path, f"expected one input tensor, the engine has {len(inputs)}")
            self.input_name = inputs[0]
            self.output_names = _output_order([n for n in names if n != inputs[0]], metadata.flavour)
            shape = tuple(self._engine.get_tensor_shape(self.input_name))
            if shape[0] < 0:
                low, _, high = self._engine.get_tensor_profile_shape(self.input_name, 0)
                self.min_batch, self.max_batch = int(low[0]), int(high[0])
            else:
                self.min_batch = self.max_batch = int(shape[0])
            if stream is None:
                # plain int handles throughout: TensorRT takes an int, cuda-python converts ints itself
                # non-blocking: a blocking stream would wait for (and hold up) the legacy default stream
                created = rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking)
                self._stream, self._own_stream = int(self._check(created, "cudaStreamCreateWithFlags")), True
            else:
                self._stream = int(stream)
            self._allocate(trt)
        except BaseException:
            self.close()
            raise
        logger.debug("%s: TensorRT %s on %s, batch %d..%d", path, trt.__version__, found.name, self.min_batch,
                     self.max_batch)

    # ---- CUDA helpers ----------------------------------------------------------------------

    def _check(self, result, what: str):
        """The value(s) of a cuda-python call; EnvironmentFailure naming the call when it failed."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self._rt.cudaError_t.cudaSuccess:
            raise EnvironmentFailure(f"{self.path}: {what} failed: {self._error_text(err)}")
        return values[0] if len(values) == 1 else (tuple(values) or None)

    def _error_text(self, err) -> str:
        return error_text(self._rt, err)

    def _allocate(self, trt) -> None:
        """Buffers for the largest batch; every tensor address bound once."""
        full = (self.max_batch, *tuple(self._engine.get_tensor_shape(self.input_name))[1:])
        if not self._context.set_input_shape(self.input_name, full):
            raise FileError(self.path, f"the engine refuses input shape {full}")
        for name in (self.input_name, *self.output_names):
            shape = tuple(self._context.get_tensor_shape(name))
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            self._buffers[name] = _Buffer(self._rt, self._check, shape, dtype)
            self._context.set_tensor_address(name, int(self._buffers[name].device_ptr))
        self._bound_batch = self.max_batch

    # ---- inference -------------------------------------------------------------------------

    @property
    def description(self) -> str:
        return f"tensorrt ({self.device.name})"

    def check_input(self, blob: np.ndarray) -> None:
        super().check_input(blob)
        if blob.shape[0] < self.min_batch:
            raise YoloV3TrtError(f"{self.path}: batch {blob.shape[0]} is below the engine's minimum {self.min_batch}")

    def _infer(self, blob: np.ndarray) -> list[np.ndarray]:
        rt, stream, batch = self._rt, self._stream, blob.shape[0]
        # another backend (another GPU) or the caller may have made another device current on this thread
        self._check(rt.cudaSetDevice(self._device_index), "cudaSetDevice")
        if batch != self._bound_batch:
            if not self._context.set_input_shape(self.input_name, blob.shape):
                raise YoloV3TrtError(f"{self.path}: the engine refuses input shape {tuple(blob.shape)}")
            self._bound_batch, self._shape_ran = batch, False
            self._drop_graphs()  # captured under the old shape: TensorRT leaves replay after a change undefined
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        source = self._buffers[self.input_name]
        count = blob.size
        np.copyto(source.host[:count], blob.reshape(-1), casting="same_kind")
        self._check(rt.cudaMemcpyAsync(source.device_ptr, source.host_ptr, count * source.dtype.itemsize, h2d,
                                       stream), "cudaMemcpyAsync (input)")
        self._enqueue(batch)
        shapes = {}
        for name in self.output_names:
            out = self._buffers[name]
            shapes[name] = tuple(self._context.get_tensor_shape(name))
            size = int(np.prod(shapes[name])) * out.dtype.itemsize
            self._check(rt.cudaMemcpyAsync(out.host_ptr, out.device_ptr, size, d2h, stream), "cudaMemcpyAsync")
        self._check(rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return [self._buffers[n].host[:int(np.prod(shapes[n]))].reshape(shapes[n]).copy()
                for n in self.output_names]

    def _enqueue(self, batch: int) -> None:
        """Run the engine on the stream: a captured CUDA graph when enabled and ready, else enqueue."""
        rt, stream = self._rt, self._stream
        if batch in self._graphs:
            self._check(rt.cudaGraphLaunch(self._graphs[batch][1], stream), "cudaGraphLaunch")
            return
        # TensorRT needs a plain run after a shape change first
        if self.cuda_graph and self._shape_ran and self._capture(batch):
            self._check(rt.cudaGraphLaunch(self._graphs[batch][1], stream), "cudaGraphLaunch")
            return
        if not self._context.execute_async_v3(stream):
            raise EnvironmentFailure(f"{self.path}: TensorRT could not enqueue the engine")
        self._shape_ran = True

    def _capture(self, batch: int) -> bool:
        """Capture the enqueue at ``batch`` as a CUDA graph into ``self._graphs``; True when it worked.

        On any failure the capture is ended (CUDA leaves a stream whose capture failed in an
        invalidated capture state until ``cudaStreamEndCapture``), the graph and executable made
        so far are destroyed, one warning is logged and graphs are switched off for good
        (``self.cuda_graph = False``): the caller then runs the plain enqueue. Nothing was
        executed under capture, so the plain run gives this call's output.
        """
        rt, stream, ok_code = self._rt, self._stream, self._rt.cudaError_t.cudaSuccess
        graph = executable = None
        began = ended = False
        problem = ""
        try:
            mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            self._check(rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
            began = True
            try:
                enqueued = bool(self._context.execute_async_v3(stream))
            except Exception as err:  # TensorRT or a plugin raising under capture
                enqueued, problem = False, f"execute_async_v3 raised {type(err).__name__}: {err}"
            ended = True  # one end per begin, whatever happens below
            err, *rest = rt.cudaStreamEndCapture(stream)
            graph = rest[0] if rest and rest[0] is not None and _handle(rest[0]) else None
            if err != ok_code:
                problem = problem or f"cudaStreamEndCapture failed: {self._error_text(err)}"
            elif not enqueued:
                problem = problem or "TensorRT could not enqueue the engine under capture"
            elif graph is None:
                problem = "cudaStreamEndCapture returned no graph"
            if not problem:
                executable = self._check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except Exception as err:  # begin/end/instantiate raising, a failed _check
            problem = problem or f"{type(err).__name__}: {err}"
        finally:
            if began and not ended:  # an exception between begin and end
                try:
                    _, *rest = rt.cudaStreamEndCapture(stream)
                    if rest and rest[0] is not None and _handle(rest[0]):
                        graph = rest[0]
                except Exception:  # nothing more can be done; the plain run below reports real trouble
                    pass
        if not problem:
            self._graphs[batch] = (graph, executable)
            return True
        if executable is not None:
            rt.cudaGraphExecDestroy(executable)
        if graph is not None:
            rt.cudaGraphDestroy(graph)
        if hasattr(rt, "cudaGetLastError"):
            rt.cudaGetLastError()  # a failed capture's error must not surface in a later, unrelated check
        self.cuda_graph = False
        logger.warning("%s: CUDA graph capture failed at batch %d (%s); running plain execute_async_v3 from now on",
                       self.path, batch, problem.splitlines()[0] if problem else "unknown")
        return False

    def _drop_graphs(self) -> None:
        for graph, executable in getattr(self, "_graphs", {}).values():
            self._rt.cudaGraphExecDestroy(executable)
            self._rt.cudaGraphDestroy(graph)
        self._graphs = {}

    # ---- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Free graphs, buffers, the stream (when ours), the context and the engine; idempotent."""
        rt = getattr(self, "_rt", None)
        if rt is not None:
            if any(getattr(self, name, None) for name in ("_buffers", "_graphs", "_own_stream")):
                rt.cudaSetDevice(self._device_index)  # free on the device they live on
            if getattr(self, "_stream", None) is not None:
                rt.cudaStreamSynchronize(self._stream)
            self._drop_graphs()
            for buffer in getattr(self, "_buffers", {}).values():
                buffer.free(rt)
            self._buffers = {}
            if getattr(self, "_own_stream", False):
                rt.cudaStreamDestroy(self._stream)
            self._stream, self._own_stream = None, False
        self._context = self._engine = None
        super().close()
