"""``Detector``: images in, :class:`~yolov3_trt.detections.Detections` out, on any backend.

Contract: a Detector holds its model's :class:`~yolov3_trt.specs.DecodeSpec` (``decode``, from
the file's metadata: inconsistent metadata is a FileError naming the file) and the resolved
:class:`~yolov3_trt.specs.NmsSpec` (``nms``: each threshold the user's, else the model's baked
one, else the package default; ``conf``, ``iou``, ``max_det`` and ``pre_nms_top_k`` read it).
``raw`` outputs go to one of two interchangeable post-processors, both ``(outputs, decode,
nms)``: the plugin's host build or the numpy fallback. ``end2end`` and ``plugin`` graphs have
NMS inside (``metadata.nms_spec()``): only stricter settings than the baked ones are accepted,
and they are applied to the graph's detections.
"""
from __future__ import annotations

import logging
import numbers
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..darknet.layers import MAX_INPUT_SIDE
from ..detections import Detections
from ..errors import DetectorArgumentError, FileError, YoloV3TrtError
from ..metadata import ModelMetadata
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K, postprocess
from ..preprocess import preprocess
from ..specs import DecodeSpec, NmsSpec
from ..vocab import Postprocessor, ResizeKernel
from .backends import DeviceError, backend_class, check_device, check_loaded_device, check_options, choose
from .backends.base import Backend

logger = logging.getLogger(__name__)
POSTPROCESSORS = Postprocessor.values()
__all__ = ["Detector", "DetectorArgumentError", "DeviceError"]



def _check_threshold(name: str, value: float | None, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise DetectorArgumentError(f"{name}={value!r} is not {what} in [0, 1]")


def _check_settings(conf: float | None, iou: float | None, max_det: int | None, threads: int | None) -> None:
    """DetectorArgumentError for thresholds the CLI would refuse too (--conf, --iou, --max-det)."""
    _check_threshold("conf", conf, "a score threshold")
    _check_threshold("iou", iou, "an IoU threshold")
    for name, value in (("max_det", max_det), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise DetectorArgumentError(f"{name}={value!r}: expected an integer >= 1")


def _resize_kernel(value: str) -> ResizeKernel:
    """``resize_kernel`` as its :class:`~yolov3_trt.vocab.ResizeKernel`; DetectorArgumentError naming a bad one."""
    try:
        return ResizeKernel.parse(value, "resize_kernel")
    except ValueError as err:
        raise DetectorArgumentError(str(err)) from None


def _input_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``416`` -> (416, 416); ``(608, 416)`` (width, height) as is; None stays None (the cfg's size)."""
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif (isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)):
        pair = (int(size[0]), int(size[1]))
    else:
        raise DetectorArgumentError(f"size={size!r}: expected N or (width, height), integers")
    if min(pair) < 1 or pair[0] % 32 or pair[1] % 32 or max(pair) > MAX_INPUT_SIDE:
        raise DetectorArgumentError(f"size={size!r}: width and height must be multiples of 32 from 32 to "
                                    f"{MAX_INPUT_SIDE}")
    return pair


def _choose_postprocessor(name: str, anchors: Sequence[Sequence[tuple[float, float]]]):
    """(function, description) for ``raw`` models: the plugin's host build (``auto`` when it is
    built and takes the model's heads, ``plugin`` always, a YoloV3TrtError saying why not when it
    cannot) or numpy."""
    if name not in POSTPROCESSORS:
        raise YoloV3TrtError(f"unknown postprocessor {name!r} (available: {', '.join(POSTPROCESSORS)})")
    if name != "numpy":
        from ..plugin import host
        from ..plugin.params import MAX_ANCHORS, MAX_HEADS

        fits = 1 <= len(anchors) <= MAX_HEADS and all(1 <= len(head) <= MAX_ANCHORS for head in anchors)
        if name == "plugin" and not fits:
            raise YoloV3TrtError(f"the plugin's host library takes 1 to {MAX_HEADS} heads of 1 to {MAX_ANCHORS} "
                                 f"anchors; this model has {[len(h) for h in anchors]}: use postprocessor='numpy'")
        if name == "plugin" or (fits and host.available()):
            host.load_library()  # the error with the build command when it is missing
            return host.postprocess_host, "plugin host library"
        if not fits:
            logger.info("heads %s are beyond the host library's limits: post-processing with numpy",
                        [len(h) for h in anchors])
        else:
            logger.info("decode + NMS host library not built (%s): post-processing with numpy",
                        host.library_path())
    return postprocess, "numpy"


def _load(model_path: str | os.PathLike, backend: str, device: str, threads: int | None,
          backend_options: Mapping[str, Any] | None) -> Backend:
    """The backend ``backend`` (or the one ``auto`` picks for the file) built on ``model_path``."""
    if not isinstance(model_path, (str, os.PathLike)):
        hint = " (for an in-memory YoloV3, use Detector.from_model(model, names))" if model_path is None else ""
        raise DetectorArgumentError(f"model_path={model_path!r}: expected the path of an .onnx file, a TensorRT "
                                    f"engine or a checkpoint{hint}, or a built backend")
    if backend_options is not None and not isinstance(backend_options, Mapping):
        raise DetectorArgumentError(f"backend_options={backend_options!r}: expected a dict of keyword arguments")
    path = Path(model_path)
    if not path.is_file():
        raise FileError(path, "no such model file")
    name = choose(path, backend, device, backend_options)
    check_device(name, device)
    options = dict(backend_options or {})
    check_options(name, options)
    return backend_class(name)(path, device=device, threads=threads, **options)


def _check_built(built: Backend, backend: str, device: str, threads: int | None,
                 backend_options: Mapping[str, Any] | None) -> None:
    """DetectorArgumentError for loading settings given beside an already built backend."""
    if built.closed:
        raise DetectorArgumentError(f"{built.path}: the {built.name} backend given is closed")
    given = [f"{name}={value!r}" for name, value, default in (("backend", backend, "auto"), ("device", device, "auto"),
                                                             ("threads", threads, None),
                                                             ("backend_options", backend_options, None))
             if value != default and not (name == "backend" and value == built.name)]
    if given:
        raise DetectorArgumentError(f"{', '.join(given)}: the {built.name} backend is already built; give these to "
                                    "its constructor")


class Detector:
    """Detect objects with an exported model (ONNX, or a checkpoint on the torch backend).

    ``detect(image)`` / ``detect_batch(images)`` take BGR uint8 arrays (OpenCV's convention;
    grey and BGRA work too) and return boxes in each image's own pixels. ``raw`` models are
    post-processed on the CPU by the decode + NMS plugin's host build (the same C++ the GPU
    plugin runs; 4-10x faster than numpy, ``benchmarks/postprocess.py``), or by the numpy
    fallback, :func:`yolov3_trt.postprocess.postprocess`, when that library is not built
    (``postprocessor="numpy"`` forces it); both give the same detections, so every backend does
    for the same outputs.

    Thread safety: one Detector may be shared by threads; calls are serialised by an internal
    lock (ONNX Runtime and torch would run them one at a time anyway on a CPU this size). For
    parallel throughput on a GPU, use one Detector per thread. ``last_timings`` is that of the
    most recent call from any thread.

    The model is a file (the backend chosen by ``backend`` and its suffix), or a built backend:
    ``Detector(TensorRTBackend(path, stream=s, cuda_graph=True))``,
    ``Detector(OnnxRuntimeBackend(path, threads=2))``; then ``backend``, ``device``, ``threads``
    and ``backend_options`` stay at their defaults (they are the backend's constructor's), and
    the Detector owns the backend from then on (:meth:`close` closes it; a Detector that refuses
    its settings leaves it open, still the caller's). With a file, ``backend_options`` go to the
    backend's constructor as keyword arguments (the names each takes are in
    ``runtime.backends.REGISTRY``), e.g. for ``tensorrt``: ``stream`` (a raw ``cudaStream_t`` as an
    int), ``cuda_graph=True``, ``verify_hash=False``. ``threads`` is refused for torch, whose thread
    count is process-wide: call ``torch.set_num_threads`` in the application.

    ``conf`` and ``iou`` are in [0, 1] and ``max_det`` >= 1, as on the command line; None takes
    the model's (end2end graphs) or the package's default. ``device``: ``"auto"`` runs on a GPU
    when the backend finds one and on the CPU otherwise; ``"cpu"``; ``"cuda"`` (or ``"cuda:N"``
    for the torch and tensorrt backends) runs on the GPU or refuses with :class:`DeviceError`
    (no GPU, a CPU-only onnxruntime or torch, or a CUDA provider that fell back to the CPU): it
    never falls back to the CPU silently. Arguments out of range raise
    :class:`DetectorArgumentError`; both are :class:`~yolov3_trt.errors.YoloV3TrtError` (and
    ``ValueError``) with a one-line message.

    ``resize_kernel``: how the image is resized into the network input (every call):
    ``"darknet"``, Darknet's exact float bilinear ``resize_image`` (the input, and so the
    detections, of the C Darknet), or ``"opencv"``, ``cv2.resize`` ``INTER_LINEAR`` on the uint8
    image (the same letterbox geometry; ~8x faster, 0.2-0.3 instead of 1.9-2.7 ms for a 768x576
    photo at 416; on Darknet's yolov3-tiny and photos the same classes, boxes within ~1.6 network
    pixels, scores within 0.05). Read back as the attribute ``resize_kernel``.

    Use as a context manager, or call :meth:`close`, to free the model.
    """

    def __init__(self, model_path: str | os.PathLike | Backend, backend: str = "auto", *,
                 conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                 device: str = "auto", threads: int | None = None, postprocessor: str = "auto",
                 backend_options: Mapping[str, Any] | None = None, resize_kernel: str = "darknet"):
        _check_settings(conf, iou, max_det, threads)
        kernel = _resize_kernel(resize_kernel)
        if isinstance(model_path, Backend):
            _check_built(model_path, backend, device, threads, backend_options)
            self._init(model_path, conf, iou, max_det, postprocessor, kernel)
            return
        loaded = _load(model_path, backend, device, threads, backend_options)
        try:
            check_loaded_device(loaded, device)
            self._init(loaded, conf, iou, max_det, postprocessor, kernel)
        except BaseException:  # a refused postprocessor or setting: free the model loaded for nothing
            loaded.close()
            raise

    @classmethod
    def from_model(cls, model, names: Sequence[str], *, size: int | tuple[int, int] | None = None,
                   conf: float | None = None, iou: float | None = None, max_det: int | None = None,
                   device: str = "auto", threads: int | None = None, postprocessor: str = "auto",
                   resize_kernel: str = "darknet") -> "Detector":
        """A Detector on the torch backend around an in-memory :class:`YoloV3`.

        ``size``: the input, ``N`` (square) or ``(width, height)``, multiples of 32; None: the cfg's.
        ``threads`` is refused (torch's thread count is process-wide: set it in the application).
        """
        if model is None or not hasattr(model, "heads") or not hasattr(model, "network"):
            raise DetectorArgumentError(f"model={type(model).__name__}: expected a yolov3_trt YoloV3 module")
        try:
            if isinstance(names, (str, bytes)):
                raise TypeError
            names = [str(n) for n in names]
        except TypeError:
            raise DetectorArgumentError(f"names={names!r}: expected a sequence of class names") from None
        _check_settings(conf, iou, max_det, threads)
        _resize_kernel(resize_kernel)
        size = _input_size(size)
        if len(names) != model.num_classes:
            raise YoloV3TrtError(f"{len(names)} class names for a model with {model.num_classes} classes")
        if not model.heads:
            raise YoloV3TrtError(f"{model.cfg.source} has no [yolo] layers: it is not a detector")
        if size is not None:
            model.network.shapes(*size)  # CfgError naming the cfg when the network cannot run at this size
        check_device("torch", device)
        from .backends.torch_backend import TorchBackend

        backend = TorchBackend(model=model, names=names, size=size, device=device, threads=threads)
        try:
            return cls(backend, conf=conf, iou=iou, max_det=max_det, postprocessor=postprocessor,
                       resize_kernel=resize_kernel)
        except BaseException:
            backend.close()
            raise

    def _init(self, backend: Backend, conf: float | None, iou: float | None, max_det: int | None,
              postprocessor: str = "auto", resize_kernel: ResizeKernel = ResizeKernel.DARKNET) -> None:
        meta = backend.metadata
        self.resize_kernel: ResizeKernel = resize_kernel
        self.decode: DecodeSpec = meta.decode_spec(backend.path)  # FileError naming the file when broken
        self._postprocess, self.postprocessor = _choose_postprocessor(postprocessor, self.decode.anchors)
        self._backend = backend
        self.metadata: ModelMetadata = meta
        baked = None
        if meta.flavour != "raw":  # end2end or plugin: NMS inside the graph
            try:
                baked = meta.nms_spec()
            except ValueError as err:
                raise FileError(backend.path, f"broken yolov3_trt metadata ({err})") from None
            if baked is None:
                raise FileError(backend.path, f"broken yolov3_trt metadata (a {meta.flavour} graph without its "
                                              "conf, iou and max_det)")
            self._check_baked(baked, conf, iou, max_det)
        self.nms: NmsSpec = self._resolve_nms(baked, conf, iou, max_det)
        self._lock = threading.Lock()
        self.last_timings: dict[str, float] = {}
        logger.info("%s on %s, input %dx%d (%s, %s resize), %d classes, %s graph%s", backend.path,
                    backend.description, *self.decode.input_size, meta.resize, resize_kernel, self.decode.num_classes,
                    meta.flavour, _budget_text(meta))

    def _resolve_nms(self, baked: NmsSpec | None, conf: float | None, iou: float | None,
                     max_det: int | None) -> NmsSpec:
        """Each setting the user's, else the model's (``baked``; for raw graphs whatever loose
        thresholds the metadata holds, usually none), else the package default."""
        model = baked or self.metadata
        resolved_conf = conf if conf is not None else (model.conf if model.conf is not None else DEFAULT_CONF)
        if not 0 <= resolved_conf <= 1:  # a model's own (metadata) value; the user's were checked already
            raise YoloV3TrtError(f"conf {resolved_conf} is not a score threshold in [0, 1]")
        try:
            return NmsSpec(conf=resolved_conf,
                           iou=iou if iou is not None else (model.iou if model.iou is not None else DEFAULT_IOU),
                           max_det=max_det if max_det is not None else (model.max_det or DEFAULT_MAX_DET),
                           pre_nms_top_k=model.pre_nms_top_k or DEFAULT_PRE_NMS_TOP_K)
        except ValueError as err:  # only the metadata's values can be out of range here
            raise FileError(self._backend.path, f"broken yolov3_trt metadata ({err})") from None

    def _check_baked(self, baked: NmsSpec, conf: float | None, iou: float | None, max_det: int | None) -> None:
        """An end-to-end graph has NMS inside (``baked``): only stricter settings can be applied after it."""
        path = self._backend.path
        if conf is not None and conf < baked.conf:
            raise YoloV3TrtError(f"{path}: exported end2end with conf {baked.conf}; conf {conf} needs a re-export "
                                 "(or the raw flavour)")
        if iou is not None and iou != baked.iou:
            raise YoloV3TrtError(f"{path}: exported end2end with iou {baked.iou}; iou {iou} needs a re-export "
                                 "(or the raw flavour)")
        if max_det is not None and max_det > baked.max_det:
            raise YoloV3TrtError(f"{path}: exported end2end with max_det {baked.max_det}; more needs a re-export")

    # ---- properties ----------------------------------------------------------------------

    @property
    def conf(self) -> float:
        """Score threshold: a detection is kept when its score is above it."""
        return self.nms.conf

    @property
    def iou(self) -> float:
        """Per-class NMS IoU threshold."""
        return self.nms.iou

    @property
    def max_det(self) -> int:
        """Most detections per image."""
        return self.nms.max_det

    @property
    def pre_nms_top_k(self) -> int | None:
        """Candidates entering NMS, the best by score."""
        return self.nms.pre_nms_top_k

    @property
    def backend(self) -> str:
        """What runs the model, e.g. ``onnxruntime (CPUExecutionProvider)``."""
        return self._backend.description

    @property
    def names(self) -> tuple[str, ...]:
        return self.metadata.names

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (width, height)."""
        return self.metadata.input_size

    # ---- inference -----------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> Detections:
        """Detect in one image (BGR uint8)."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in several images at once (sizes may differ); one :class:`Detections` each."""
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise YoloV3TrtError("detect_batch takes a list of images (or a (B, H, W, C) array); "
                                 "use detect() for one image")
        with self._lock:
            start = time.perf_counter()
            blob, transforms = preprocess(list(images), self.input_size, self.metadata.resize,
                                          kernel=self.resize_kernel.value)
            prepared = time.perf_counter()
            step = self._backend.max_batch or len(blob) or 1
            outputs = [self._backend.infer(blob[i:i + step]) for i in range(0, len(blob), step)]
            inferred = time.perf_counter()
            results = [d for chunk in outputs for d in self._detections(chunk)]
            detections = [Detections.from_arrays(t.to_image(boxes), scores, classes, self.names)
                          for (boxes, scores, classes), t in zip(results, transforms)]
            done = time.perf_counter()
            self.last_timings = {"preprocess": (prepared - start) * 1e3, "infer": (inferred - prepared) * 1e3,
                                 "postprocess": (done - inferred) * 1e3, "total": (done - start) * 1e3}
        return detections

    def _detections(self, outputs: list[np.ndarray]):
        """Per image (boxes in network pixels, scores, class ids) from one batch's outputs."""
        if self.metadata.flavour == "raw":
            return self._postprocess(outputs, self.decode, self.nms)
        num_dets, boxes, scores, classes = outputs
        out = []
        for n, b, s, c in zip(num_dets[:, 0], boxes, scores, classes):
            keep = np.flatnonzero(s[:n] > np.float32(self.conf))[: self.max_det]
            out.append((b[keep], s[keep], c[keep]))
        return out

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Free the model. Further calls raise."""
        self._backend.close()

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _budget_text(meta: ModelMetadata) -> str:
    """The log's note on an INT8 file made within an AP50 budget ("" without one)."""
    record = meta.ap_budget
    try:
        text = (f", INT8 within an AP50 budget of {float(record['budget']):g} points (drop {float(record['drop']):.2f} "
                f"on its validation set, {int(record['k'])} layers in higher precision)")
        if record.get("holdout"):
            text = text[:-1] + f"; held out: drop {float(record['holdout']['drop']):.2f})"
        return text
    except (TypeError, KeyError, ValueError):  # None, or a record of another version
        return ""
