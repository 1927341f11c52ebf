"""Every set of allowed values, defined once.

Each vocabulary is a ``str`` enum: a member equals its spelling (``Flavour.END2END == "end2end"``),
so metadata, sidecars and JSON keep plain strings, while argparse ``choices``, parsing of stored
values and error messages all derive from the one definition here. No heavy imports: the CLIs'
parsers import this module.

Python 3.10 has no ``enum.StrEnum``; :class:`Choice` is its equivalent for our use (``str()`` and
``format()`` give the value).
"""
from __future__ import annotations

import enum
from typing import TypeVar

C = TypeVar("C", bound="Choice")


class Choice(str, enum.Enum):
    """A closed set of spellings. ``str(member)`` is its value."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The spellings, in definition order (argparse ``choices``, messages)."""
        return tuple(m.value for m in cls)

    @classmethod
    def describe(cls) -> str:
        """``"raw, end2end, plugin"``: for error messages."""
        return ", ".join(cls.values())

    @classmethod
    def parse(cls: type[C], value: object, what: str | None = None) -> C:
        """The member spelt ``value``; ValueError naming ``what`` (default: the class) and the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown {what or cls.__name__.lower()} {value!r} (expected one of "
                             f"{cls.describe()})") from None


class Flavour(Choice):
    """What an exported graph ends with: raw heads, decode + TensorRT NMS layer, or the plugin node."""

    RAW = "raw"
    END2END = "end2end"
    PLUGIN = "plugin"


class Precision(Choice):
    """Numeric precision of a model file or engine."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Target(Choice):
    """Where an INT8 file is meant to run: TensorRT (ModelOpt Q/DQ placement) or ONNX Runtime's CPU QDQ."""

    TENSORRT = "tensorrt"
    CPU = "cpu"


class CalibMethod(Choice):
    """Activation-range method of INT8 calibration."""

    ENTROPY = "entropy"
    MAX = "max"
    PERCENTILE = "percentile"


class Backend(Choice):
    """An inference runtime of the Detector (``auto``: chosen per file and hardware)."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"


class HardwareCompat(Choice):
    """TensorRT's hardware-compatibility levels, as ``build --hardware-compatible`` spells them."""

    NONE = "none"
    AMPERE_PLUS = "ampere+"
    SAME_CC = "same-cc"


class ResizeMode(Choice):
    """How an image becomes the network input: Darknet's letterbox, or a plain stretch."""

    LETTERBOX = "letterbox"
    RESIZE = "resize"


class ResizeKernel(Choice):
    """Which bilinear resize puts the image in the network input: Darknet's exact float one (detections
    equal the C Darknet's), or OpenCV's ``cv2.resize`` (``INTER_LINEAR`` on the uint8 image, about 8x faster)."""

    DARKNET = "darknet"
    OPENCV = "opencv"


class Postprocessor(Choice):
    """Who decodes raw heads in the Detector: the plugin's host library, numpy, or auto."""

    AUTO = "auto"
    PLUGIN = "plugin"
    NUMPY = "numpy"


class InferencePrecision(Choice):
    """OpenVINO's CPU inference precision."""

    F32 = "f32"
    BF16 = "bf16"
