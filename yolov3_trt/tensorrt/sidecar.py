"""The engine's sidecar: a JSON file beside a TensorRT plan that says what it is and where it runs.

The engine stays a plain TensorRT plan (trtexec and DeepStream load it as is); everything else
lives in ``<engine>.json``: the TensorRT version and GPU it was built for, precision, input size,
batch range, class names, anchors, plugin use, the SHA-256 of the engine and of its ONNX, and the
ONNX's ``yolov3_trt.*`` metadata (so the runtime decodes exactly as for the ONNX).

A TensorRT plan only runs under the TensorRT version and on the kind of GPU it was built with
(unless built version- or hardware-compatible); when it does not, TensorRT prints "engine
generated on an incompatible device" or crashes. :func:`check_compatible` turns each of those
cases into one line naming the engine, what it was built for and what is here, before TensorRT
sees the file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import EngineCompatibilityError, FileError
from ..fileio import atomic_write_json, file_sha256
from ..metadata import ModelMetadata
from ..specs import DecodeSpec, NmsSpec
from ..vocab import HardwareCompat, Precision
from .device import CudaDevice, parse_version

SIDECAR_FORMAT = "yolov3_trt.engine"
SIDECAR_VERSION = 1
PRECISIONS = Precision.values()
HARDWARE_COMPATIBILITY = HardwareCompat.values()  # TensorRT's levels, as the build tool spells them


def sidecar_path(engine: str | os.PathLike) -> Path:
    """``yolov3.engine`` -> ``yolov3.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


@dataclass(frozen=True)
class EngineInfo:
    """What ``<engine>.json`` holds. ``batch`` is the optimisation profile's (min, opt, max)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str                                   # fp32 | fp16 | int8 (the ONNX's precision)
    input_size: tuple[int, int]                      # (width, height)
    batch: tuple[int, int, int]
    flavour: str                                     # raw | end2end | plugin
    names: tuple[str, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    plugin: Mapping[str, str] = field(default_factory=dict)   # namespace, name, version when used
    engine_sha256: str = ""
    onnx_sha256: str = ""
    onnx_file: str = ""
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    dla_core: int | None = None
    model: Mapping[str, str] = field(default_factory=dict)    # the ONNX's yolov3_trt.* metadata_props

    def to_json(self) -> dict[str, Any]:
        out = {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, **asdict(self)}
        out["compute_capability"] = f"{self.compute_capability[0]}.{self.compute_capability[1]}"
        out["plugin"], out["model"] = dict(self.plugin), dict(self.model)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str | os.PathLike) -> "EngineInfo":
        """Parse a sidecar's JSON; FileError naming ``path`` when it is not ours or is broken."""
        if not isinstance(data, Mapping) or data.get("format") != SIDECAR_FORMAT:
            raise FileError(path, "is not a yolov3_trt engine sidecar (no \"format\": \"yolov3_trt.engine\")")
        try:
            if int(data.get("version", 0)) > SIDECAR_VERSION:
                raise FileError(path, f"sidecar version {data['version']} is newer than this yolov3_trt reads "
                                      f"({SIDECAR_VERSION}); upgrade yolov3_trt")
            major, minor = (int(v) for v in str(data["compute_capability"]).split("."))
            width, height = (int(v) for v in data["input_size"])
            low, opt, high = (int(v) for v in data["batch"])
            info = cls(
                tensorrt_version=str(data["tensorrt_version"]), gpu_name=str(data["gpu_name"]),
                compute_capability=(major, minor), precision=str(data["precision"]), input_size=(width, height),
                batch=(low, opt, high), flavour=str(data["flavour"]), names=tuple(str(n) for n in data["names"]),
                anchors=tuple(tuple((float(w), float(h)) for w, h in head) for head in data["anchors"]),
                plugin={str(k): str(v) for k, v in dict(data.get("plugin") or {}).items()},
                engine_sha256=str(data.get("engine_sha256", "")), onnx_sha256=str(data.get("onnx_sha256", "")),
                onnx_file=str(data.get("onnx_file", "")),
                hardware_compatibility=str(data.get("hardware_compatibility", "none")),
                version_compatible=bool(data.get("version_compatible", False)),
                dla_core=None if data.get("dla_core") is None else int(data["dla_core"]),
                model={str(k): str(v) for k, v in dict(data.get("model") or {}).items()})
        except (KeyError, ValueError, TypeError) as err:
            raise FileError(path, f"broken engine sidecar ({type(err).__name__}: {err})") from None
        if info.precision not in PRECISIONS:
            raise FileError(path, f"unknown precision {info.precision!r} (expected {', '.join(PRECISIONS)})")
        if info.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise FileError(path, f"unknown hardware_compatibility {info.hardware_compatibility!r}")
        if not 1 <= low <= opt <= high:
            raise FileError(path, f"batch range {low}:{opt}:{high} is not min <= opt <= max")
        return info

    def model_metadata(self, path: str | os.PathLike) -> ModelMetadata:
        """The ONNX's metadata as the runtime uses it (flavour, names, anchors, strides, thresholds)."""
        return ModelMetadata.from_props(self.model, sidecar_path(path))

    def decode_spec(self, path: str | os.PathLike) -> DecodeSpec:
        """The engine's decode, from the ONNX metadata it carries (the sidecar's own ``input_size``
        and ``anchors`` are a summary for readers; :func:`check_consistent` holds them to it)."""
        return self.model_metadata(path).decode_spec(sidecar_path(path))

    def nms_spec(self, path: str | os.PathLike) -> NmsSpec | None:
        """The NMS baked into the engine (end2end, plugin), None for raw heads."""
        return self.model_metadata(path).nms_spec()


def check_consistent(engine: str | os.PathLike, info: EngineInfo, meta: ModelMetadata) -> None:
    """FileError naming the sidecar when its summary fields (names, input size, flavour, anchors)
    disagree with the model metadata it carries."""
    differ = []
    if tuple(info.names) != tuple(meta.names):
        differ.append(f"names ({len(info.names)} vs {len(meta.names)} in the model metadata"
                      + (")" if len(info.names) != len(meta.names) else
                         f", first difference {next(a for a, b in zip(info.names, meta.names) if a != b)!r})"))
    if tuple(info.input_size) != tuple(meta.input_size):
        differ.append(f"input_size ({info.input_size[0]}x{info.input_size[1]} vs "
                      f"{meta.input_size[0]}x{meta.input_size[1]})")
    if info.flavour != meta.flavour:
        differ.append(f"flavour ({info.flavour} vs {meta.flavour})")
    if info.anchors != meta.anchors:
        differ.append("anchors")
    if differ:
        raise FileError(sidecar_path(engine), f"disagrees with the model metadata it carries: {'; '.join(differ)} "
                                              "(a hand-edited or mismatched sidecar): rebuild the engine")


def write_sidecar(engine: str | os.PathLike, info: EngineInfo) -> Path:
    """Write ``info`` beside ``engine`` atomically; returns the sidecar's path."""
    path = sidecar_path(engine)
    atomic_write_json(path, info.to_json())
    return path


def read_sidecar(engine: str | os.PathLike) -> EngineInfo:
    """The sidecar of ``engine``; FileError when it is missing or unreadable."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise FileError(engine, f"no sidecar {path.name} beside it: engines built by python -m yolov3_trt.build "
                                "carry one (names, anchors, the TensorRT/GPU they run on)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileError(path, f"unreadable engine sidecar ({type(err).__name__}: {err})") from None
    return EngineInfo.from_json(data, path)


def check_compatible(engine: str | os.PathLike, info: EngineInfo, tensorrt_version: str,
                     device: CudaDevice) -> None:
    """EngineCompatibilityError when ``engine`` (described by ``info``) cannot run here.

    TensorRT version: equal, or for a version-compatible engine the same major and not older.
    GPU: the same model, or for hardware-compatible engines any GPU of the allowed compute
    capabilities (``ampere+``: 8.0 or newer; ``same-cc``: the same capability).
    """
    rebuild = (f"rebuild it on this machine: python -m yolov3_trt.build --model "
               f"{info.onnx_file or '<its ONNX>'} --output {os.fspath(engine)}")
    built, here = parse_version(info.tensorrt_version), parse_version(tensorrt_version)
    if info.version_compatible:
        if built[:1] != here[:1] or here < built:
            raise EngineCompatibilityError(engine, f"built version-compatible with TensorRT {info.tensorrt_version}, "
                                                   f"which TensorRT {tensorrt_version} cannot run; {rebuild}")
    elif built[:3] != here[:3]:
        raise EngineCompatibilityError(engine, f"built with TensorRT {info.tensorrt_version}, this is TensorRT "
                                               f"{tensorrt_version} (an engine runs only on the version that built "
                                               f"it); {rebuild}")
    cc_built = f"{info.compute_capability[0]}.{info.compute_capability[1]}"
    where = f"built on {info.gpu_name} (sm {cc_built}), this GPU is {device.name} (sm {device.sm})"
    if info.hardware_compatibility == "ampere+":
        if device.compute_capability < (8, 0):
            raise EngineCompatibilityError(engine, f"{where}: ampere+ engines need sm 8.0 or newer; {rebuild}")
        return
    if device.compute_capability != info.compute_capability:
        raise EngineCompatibilityError(engine, f"{where}: engine generated on an incompatible device; {rebuild}")
    if info.hardware_compatibility == "none" and device.name != info.gpu_name:
        raise EngineCompatibilityError(engine, f"{where}: engines are tuned for one GPU model; {rebuild} "
                                               "(or build with --hardware-compatible same-cc)")


def check_engine_hash(engine: str | os.PathLike, info: EngineInfo, plan: bytes | None = None) -> None:
    """EngineCompatibilityError when the engine file is not the one its sidecar describes.

    ``plan``: the engine's bytes when the caller has read them already (hashed instead of the file).
    """
    actual = file_sha256(engine) if plan is None else hashlib.sha256(plan).hexdigest()
    if info.engine_sha256 and actual != info.engine_sha256:
        raise EngineCompatibilityError(engine, f"sha256 {actual[:12]}... differs from its sidecar's "
                                               f"{info.engine_sha256[:12]}...: the engine was replaced or damaged "
                                               "after it was built; rebuild it")
