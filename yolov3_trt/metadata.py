"""What an exported model carries about itself, in ONNX ``metadata_props`` or an engine's sidecar.

Everything a runtime needs to use a model file alone: input size, class names, anchors and
strides per head, the letterbox mode, and for end-to-end graphs the thresholds baked into them.
Values are strings (ONNX stores string pairs); lists and numbers are JSON. No onnx or torch
import: ONNX Runtime reads the map with ``session.get_modelmeta().custom_metadata_map``.

The decode and NMS facts are the specs' (:mod:`yolov3_trt.specs`): :meth:`ModelMetadata.from_specs`
stores a :class:`~yolov3_trt.specs.DecodeSpec` (and an :class:`~yolov3_trt.specs.NmsSpec` for
tailed graphs), :meth:`~ModelMetadata.decode_spec` / :meth:`~ModelMetadata.nms_spec` give them
back. The stored keys (format version 1) are unchanged: ``input_size`` [w, h], ``anchors``
[[[w, h], ...], ...], ``strides`` [[x, y], ...], ``conf``, ``iou``, ``max_det``, ``pre_nms_top_k``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .errors import FileError
from .specs import DecodeSpec, NmsSpec
from .vocab import Flavour

FORMAT = "yolov3_trt"
VERSION = 1
FLAVOURS = Flavour.values()  # plugin: decode + NMS as the TensorRT plugin node
NMS_KEYS = ("conf", "iou", "max_det", "pre_nms_top_k")  # NmsSpec's fields, stored for tailed graphs
PREFIX = "yolov3_trt."


@dataclass(frozen=True)
class ModelMetadata:
    """Model facts stored beside the graph.

    ``anchors[i]`` are head ``i``'s anchors (w, h) in input pixels, ``strides[i]`` its (x, y)
    stride; heads are in the graph's output order. ``conf``/``iou``/``max_det``/``pre_nms_top_k``
    are set for ``end2end`` graphs, whose NMS is inside the graph.
    """

    flavour: str
    input_size: tuple[int, int]                        # (width, height)
    names: tuple[str, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    strides: tuple[tuple[int, int], ...]
    resize: str = "letterbox"                          # "letterbox" or "resize"
    weights_sha256: str = ""
    source: str = ""                                   # what it was exported from (file names)
    cfg: str = ""                                      # the Darknet cfg text
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    pre_nms_top_k: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def ap_budget(self) -> dict | None:
        """An INT8 file's accuracy budget record (``yolov3_trt.quantize.budget``: ``budget``, the
        measured ``drop``, ``k`` and the ``layers`` kept in higher precision, the held-out result),
        or None (no budget, or a record this version cannot read)."""
        text = self.extra.get("ap_budget")
        try:
            value = json.loads(text) if text else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @classmethod
    def from_model(cls, model, names: Sequence[str], size: tuple[int, int] | None = None,
                   **fields) -> "ModelMetadata":
        """Metadata of a ``YoloV3`` at ``size`` (default: the cfg's); ``fields`` set the rest.

        Takes the model duck-typed (``network``, ``heads``, ``cfg``, ``input_size``), so this
        module still imports no torch.
        """
        from .darknet.cfg import format_cfg

        decode = model.decode_spec(size)  # also validates the size for this cfg
        return cls.from_specs(decode, names, **{"flavour": "raw", "cfg": format_cfg(model.cfg), **fields})

    @classmethod
    def from_specs(cls, decode: DecodeSpec, names: Sequence[str], nms: NmsSpec | None = None,
                   **fields) -> "ModelMetadata":
        """Metadata holding ``decode`` (and ``nms``, for end2end and plugin graphs); ``fields`` set the rest."""
        thresholds = {} if nms is None else {"conf": float(nms.conf), "iou": float(nms.iou),
                                             "max_det": int(nms.max_det), "pre_nms_top_k": nms.pre_nms_top_k}
        return cls(**{**fields, **thresholds}, input_size=decode.input_size, names=tuple(names),
                   anchors=decode.anchors, strides=decode.strides)

    def decode_spec(self, path: str | os.PathLike | None = None) -> DecodeSpec:
        """The model's decode; with ``path``, inconsistent values are a FileError naming it."""
        try:
            return DecodeSpec.from_strides(self.anchors, self.strides, self.num_classes, self.input_size)
        except ValueError as err:
            if path is None:
                raise
            raise FileError(path, f"broken yolov3_trt metadata ({err})") from None

    def nms_spec(self) -> NmsSpec | None:
        """The NMS baked into an end2end or plugin graph; None for raw heads (or when not stored)."""
        if self.conf is None or self.iou is None or self.max_det is None:
            return None
        return NmsSpec(conf=self.conf, iou=self.iou, max_det=self.max_det, pre_nms_top_k=self.pre_nms_top_k)

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props``."""
        props = {
            "format": FORMAT, "version": str(VERSION), "flavour": self.flavour,
            "input_size": json.dumps(list(self.input_size)), "names": json.dumps(list(self.names)),
            "anchors": json.dumps([[list(a) for a in head] for head in self.anchors]),
            "strides": json.dumps([list(s) for s in self.strides]), "resize": self.resize,
            "weights_sha256": self.weights_sha256, "source": self.source, "cfg": self.cfg,
        }
        for key in NMS_KEYS:
            value = getattr(self, key)
            if value is not None:
                props[key] = json.dumps(value)
        props.update(self.extra)
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: str | os.PathLike) -> "ModelMetadata":
        """Parse ``metadata_props``; FileError naming ``path`` when ours are missing or broken."""
        ours = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if ours.get("format") != FORMAT:
            raise FileError(path, "has no yolov3_trt metadata: export it with python -m yolov3_trt.export")
        try:
            version = int(ours["version"])
            if version > VERSION:
                raise FileError(path, f"metadata version {version} is newer than this yolov3_trt reads "
                                      f"({VERSION}); upgrade yolov3_trt")
            flavour = ours["flavour"]
            if flavour not in FLAVOURS:
                raise ValueError(f"unknown flavour {flavour!r}")
            optional = {k: json.loads(ours[k]) for k in NMS_KEYS if k in ours}
            known = {"format", "version", "flavour", "input_size", "names", "anchors", "strides", "resize",
                     "weights_sha256", "source", "cfg", *optional}
            width, height = (int(v) for v in json.loads(ours["input_size"]))
            return cls(
                flavour=flavour, input_size=(width, height), names=tuple(json.loads(ours["names"])),
                anchors=tuple(tuple((float(w), float(h)) for w, h in head) for head in json.loads(ours["anchors"])),
                strides=tuple((int(x), int(y)) for x, y in json.loads(ours["strides"])),
                resize=ours.get("resize", "letterbox"), weights_sha256=ours.get("weights_sha256", ""),
                source=ours.get("source", ""), cfg=ours.get("cfg", ""), **optional,
                extra={k: v for k, v in ours.items() if k not in known})
        except FileError:
            raise
        except (KeyError, ValueError, TypeError) as err:
            raise FileError(path, f"broken yolov3_trt metadata ({type(err).__name__}: {err})") from None
