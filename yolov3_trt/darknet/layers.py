"""Typed, validated layers from a parsed cfg, with Darknet's defaults and shape arithmetic.

:func:`build_network` turns :class:`~yolov3_trt.darknet.cfg.DarknetCfg` sections into frozen
layer specs, checking every value and reference against Darknet's rules (``parse.c``), and
:meth:`Network.shapes` computes each layer's output shape, Darknet's BFLOPs and parameter counts
at any input size. Nothing here needs torch, so the runtime and ``info`` stay light.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Union

from .cfg import DarknetCfg, Section

logger = logging.getLogger(__name__)

ACTIVATIONS = ("linear", "leaky", "relu", "logistic")

# Sizes no tool can run, refused with the numbers before anything is allocated (a cfg with
# width=99999968 or filters=2000000000 otherwise dies deep inside torch's allocator).
MAX_INPUT_SIDE = 8192             # px, width and height: beyond 8K video; tile larger images
MAX_TENSOR_ELEMENTS = 2**31 - 1   # one layer's output (per image) or weight tensor: int32-indexed
                                  # in TensorRT (its volume limit) and in many CUDA kernels
MAX_ACTIVATION_BYTES = 64 * 2**30  # every layer output of one image, float32 (yolov3 at 608: 0.45 GiB)
MAX_FILE_VALUES = 2**29           # float32 values stored (2 GiB: one ONNX protobuf's limit; yolov3: 62M)

# [net] holds training settings Darknet reads in many places; unknown ones are only warned about.
NET_OPTIONS = frozenset(
    "batch subdivisions width height channels momentum decay angle saturation exposure hue aspect "
    "learning_rate burn_in max_batches policy steps scales power gamma step min_crop max_crop "
    "max_ratio min_ratio center clip inputs time_steps notruth random adam B1 B2 eps".split())

# Options each layer type understands. Anything else is an error: silently ignoring an option
# (say a fork's ``scale_x_y``) would give a network that differs from the one the cfg describes.
LAYER_OPTIONS: dict[str, frozenset[str]] = {
    "convolutional": frozenset("filters size stride pad padding groups batch_normalize activation".split()),
    "route": frozenset({"layers"}),
    "shortcut": frozenset({"from", "activation"}),
    "upsample": frozenset({"stride", "scale"}),
    "maxpool": frozenset({"size", "stride", "padding"}),
    "avgpool": frozenset(),
    "softmax": frozenset({"groups", "temperature"}),
    "yolo": frozenset("mask anchors classes num jitter ignore_thresh truth_thresh random max".split()),
}


@dataclass(frozen=True)
class NetSpec:
    width: int
    height: int
    channels: int


@dataclass(frozen=True)
class ConvSpec:
    filters: int
    size: int
    stride: int
    padding: int
    groups: int
    batch_normalize: bool
    activation: str


@dataclass(frozen=True)
class RouteSpec:
    layers: tuple[int, ...]  # absolute layer indices


@dataclass(frozen=True)
class ShortcutSpec:
    from_layer: int  # absolute layer index
    activation: str


@dataclass(frozen=True)
class UpsampleSpec:
    stride: int
    scale: float


@dataclass(frozen=True)
class MaxPoolSpec:
    size: int
    stride: int
    padding: int  # total padding; Darknet puts padding // 2 before and the rest after


@dataclass(frozen=True)
class AvgPoolSpec:
    pass


@dataclass(frozen=True)
class SoftmaxSpec:
    groups: int
    temperature: float


@dataclass(frozen=True)
class YoloSpec:
    mask: tuple[int, ...]
    anchors: tuple[tuple[float, float], ...]  # all ``num`` anchors, (w, h) in input pixels
    classes: int
    num: int
    jitter: float
    ignore_thresh: float
    truth_thresh: float
    random: bool
    max_boxes: int

    @property
    def masked_anchors(self) -> tuple[tuple[float, float], ...]:
        """The anchors this head predicts with, in mask order."""
        return tuple(self.anchors[m] for m in self.mask)


LayerSpec = Union[ConvSpec, RouteSpec, ShortcutSpec, UpsampleSpec, MaxPoolSpec, AvgPoolSpec,
                  SoftmaxSpec, YoloSpec]


@dataclass(frozen=True)
class YoloHead:
    """What decoding one [yolo] output needs: its anchors (w, h, input pixels) and class count.
    At an input size, with the grid from the network's shapes, a head is a
    :class:`~yolov3_trt.specs.HeadSpec` of a :class:`~yolov3_trt.specs.DecodeSpec`
    (``YoloV3.decode_spec``)."""

    layer: int
    anchors: tuple[tuple[float, float], ...]
    classes: int


@dataclass(frozen=True)
class LayerShape:
    """One layer at a given input size. Shapes are (channels, height, width)."""

    index: int
    type: str
    spec: LayerSpec
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    bflops: float       # Darknet's count: 2*k*k*(c/groups)*n*out_h*out_w / 1e9, conv layers only
    parameters: int     # trainable: conv weights, biases or BN shift, BN scale
    file_values: int    # float32 values this layer stores in a .weights file


class _Reader:
    """Typed option access for one section, with errors that name file and line."""

    def __init__(self, cfg: DarknetCfg, section: Section):
        self.cfg, self.section = cfg, section

    def error(self, problem: str, key: str | None = None):
        line = self.section.line_of(key) if key else self.section.line
        return self.cfg.error(f"[{self.section.type}] {problem}", line)

    def _get(self, key: str, default, convert: Callable, what: str):
        raw = self.section.options.get(key)
        if raw is None:
            if default is None:
                raise self.error(f"missing required option {key!r}")
            return default
        try:
            return convert(raw)
        except ValueError:
            raise self.error(f"bad value {key}={raw!r}: expected {what}", key) from None

    def int(self, key: str, default: int | None = None, minimum: int | None = None,
            maximum: int | None = None, why: str = "") -> int:
        value = self._get(key, default, int, "an integer")
        if minimum is not None and value < minimum:
            raise self.error(f"{key}={value} must be >= {minimum}", key)
        if maximum is not None and value > maximum:
            raise self.error(f"{key}={value} must be <= {maximum}{why}", key)
        return value

    def float(self, key: str, default: float | None = None) -> float:
        return self._get(key, default, float, "a number")

    def ints(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        return self._get(key, default, lambda s: tuple(int(v) for v in s.split(",") if v != ""),
                         "comma-separated integers")

    def floats(self, key: str) -> tuple[float, ...]:
        return self._get(key, None, lambda s: tuple(float(v) for v in s.split(",") if v != ""),
                         "comma-separated numbers")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.section.options.get(key, default)
        if value not in choices:
            raise self.error(f"unsupported {key}={value!r} (supported: {', '.join(choices)})", key)
        return value

    def check_known(self, known: frozenset[str]) -> None:
        for key in self.section.options:
            if key not in known:
                raise self.error(f"unknown option {key!r} (supported: {', '.join(sorted(known)) or 'none'})",
                                 key)


def _layer_ref(reader: _Reader, key: str, value: int, index: int) -> int:
    absolute = index + value if value < 0 else value
    if not 0 <= absolute < index:
        raise reader.error(f"{key} refers to layer {value} (absolute {absolute}), "
                           f"but layer {index} can only use layers 0..{index - 1}", key)
    return absolute


def _parse_layer(r: _Reader, index: int) -> LayerSpec:
    kind = r.section.type
    r.check_known(LAYER_OPTIONS[kind])
    if kind == "convolutional":
        size = r.int("size", 1, minimum=1)
        pad = r.int("pad", 0, minimum=0)
        padding = size // 2 if pad else r.int("padding", 0, minimum=0)
        return ConvSpec(filters=r.int("filters", 1, minimum=1), size=size, stride=r.int("stride", 1, minimum=1),
                        padding=padding, groups=r.int("groups", 1, minimum=1),
                        batch_normalize=bool(r.int("batch_normalize", 0)),
                        activation=r.choice("activation", "logistic", ACTIVATIONS))
    if kind == "route":
        refs = r.ints("layers")
        if not refs:
            raise r.error("layers= is empty", "layers")
        return RouteSpec(tuple(_layer_ref(r, "layers", v, index) for v in refs))
    if kind == "shortcut":
        return ShortcutSpec(_layer_ref(r, "from", r.int("from"), index),
                            r.choice("activation", "linear", ACTIVATIONS))
    if kind == "upsample":
        return UpsampleSpec(r.int("stride", 2, minimum=1), r.float("scale", 1.0))
    if kind == "maxpool":
        stride = r.int("stride", 1, minimum=1)
        size = r.int("size", stride, minimum=1)
        return MaxPoolSpec(size, stride, r.int("padding", size - 1, minimum=0))
    if kind == "avgpool":
        return AvgPoolSpec()
    if kind == "softmax":
        return SoftmaxSpec(r.int("groups", 1, minimum=1), r.float("temperature", 1.0))
    if kind == "yolo":
        num = r.int("num", 1, minimum=1)
        mask = r.ints("mask", tuple(range(num)))
        for m in mask:
            if not 0 <= m < num:
                raise r.error(f"mask index {m} is outside 0..{num - 1} (num={num})", "mask")
        values = r.floats("anchors") if "anchors" in r.section.options else ()
        if len(values) != 2 * num:
            raise r.error(f"anchors= has {len(values)} numbers but num={num} needs {2 * num} "
                          f"(a width,height pair per anchor)", "anchors" if values else None)
        anchors = tuple((values[2 * i], values[2 * i + 1]) for i in range(num))
        if any(w <= 0 or h <= 0 for w, h in anchors):
            raise r.error("anchors must be positive", "anchors")
        return YoloSpec(mask=mask, anchors=anchors, classes=r.int("classes", 20, minimum=1), num=num,
                        jitter=r.float("jitter", 0.2), ignore_thresh=r.float("ignore_thresh", 0.5),
                        truth_thresh=r.float("truth_thresh", 1.0), random=bool(r.int("random", 0)),
                        max_boxes=r.int("max", 90, minimum=1))
    raise r.error("is not a layer type")  # unreachable: the parser admits only known sections


@dataclass(frozen=True)
class Network:
    """A validated network: input spec and layers, with each layer's cfg line for errors."""

    net: NetSpec
    layers: tuple[LayerSpec, ...]
    types: tuple[str, ...]
    lines: tuple[int | None, ...]
    source: str

    def heads(self) -> list[YoloHead]:
        """The [yolo] layers in cfg order: what the model's outputs are decoded with."""
        return [YoloHead(i, spec.masked_anchors, spec.classes)
                for i, spec in enumerate(self.layers) if isinstance(spec, YoloSpec)]

    def shapes(self, width: int | None = None, height: int | None = None) -> list[LayerShape]:
        """Every layer's input and output shape at ``width`` x ``height`` (default: the cfg's).

        CfgError (one line, with the numbers) when the network cannot be run at that size: a side
        over :data:`MAX_INPUT_SIDE`, a layer output or weight tensor over
        :data:`MAX_TENSOR_ELEMENTS`, activations over :data:`MAX_ACTIVATION_BYTES` per image, or
        more than :data:`MAX_FILE_VALUES` weights. Nothing is allocated, so tools call this first.
        """
        from ..errors import CfgError

        width = width or self.net.width
        height = height or self.net.height
        if max(width, height) > MAX_INPUT_SIDE:
            raise CfgError(self.source, f"input {width}x{height} is too large: each side must be at most "
                                        f"{MAX_INPUT_SIDE} px (tile larger images)")
        out: list[LayerShape] = []
        prev = (self.net.channels, height, width)
        if math.prod(prev) > MAX_TENSOR_ELEMENTS:
            raise CfgError(self.source, f"input {width}x{height}x{self.net.channels} = {math.prod(prev):,} values "
                                        f"per image exceed {MAX_TENSOR_ELEMENTS:,}, the most one tensor may hold")
        activations = stored = 0

        def fail(i: int, problem: str) -> CfgError:
            return CfgError(self.source, f"layer {i} [{self.types[i]}] at input {width}x{height}: {problem}",
                            self.lines[i])

        for i, spec in enumerate(self.layers):
            c, h, w = prev
            bflops, params, values = 0.0, 0, 0
            if isinstance(spec, ConvSpec):
                if c % spec.groups or spec.filters % spec.groups:
                    raise fail(i, f"groups={spec.groups} must divide input channels {c} and filters {spec.filters}")
                oh = (h + 2 * spec.padding - spec.size) // spec.stride + 1
                ow = (w + 2 * spec.padding - spec.size) // spec.stride + 1
                weights = spec.filters * (c // spec.groups) * spec.size * spec.size
                if weights > MAX_TENSOR_ELEMENTS:
                    raise fail(i, f"weights {spec.filters}x{c // spec.groups}x{spec.size}x{spec.size} = "
                                  f"{weights:,} values exceed {MAX_TENSOR_ELEMENTS:,}, the most one tensor may hold")
                bflops = 2.0 * weights * oh * ow / 1e9
                params = weights + spec.filters * (2 if spec.batch_normalize else 1)
                values = weights + spec.filters * (4 if spec.batch_normalize else 1)
                shape = (spec.filters, oh, ow)
            elif isinstance(spec, RouteSpec):
                parts = [out[j].output for j in spec.layers]
                if any(p[1:] != parts[0][1:] for p in parts):
                    raise fail(i, "routed layers differ in height/width: "
                                  + ", ".join(f"layer {j} {out[j].output}" for j in spec.layers))
                shape = (sum(p[0] for p in parts), parts[0][1], parts[0][2])
            elif isinstance(spec, ShortcutSpec):
                other = out[spec.from_layer].output
                if other != prev:
                    raise fail(i, f"adds layer {spec.from_layer} of shape {other} to shape {prev}")
                shape = prev
            elif isinstance(spec, UpsampleSpec):
                shape = (c, h * spec.stride, w * spec.stride)
            elif isinstance(spec, MaxPoolSpec):
                shape = (c, (h + spec.padding - spec.size) // spec.stride + 1,
                         (w + spec.padding - spec.size) // spec.stride + 1)
            elif isinstance(spec, AvgPoolSpec):
                shape = (c, 1, 1)
            elif isinstance(spec, SoftmaxSpec):
                if (c * h * w) % spec.groups:
                    raise fail(i, f"groups={spec.groups} does not divide {c * h * w} inputs")
                shape = prev
            else:  # YoloSpec
                need = len(spec.mask) * (spec.classes + 5)
                if c != need:
                    raise fail(i, f"expects len(mask)*(classes+5) = {len(spec.mask)}*({spec.classes}+5) = "
                                  f"{need} input channels, but the layer before it gives {c}: "
                                  f"set filters={need} there")
                shape = prev
            if min(shape) < 1:
                raise fail(i, f"output shape {shape} is empty: the input is too small")
            elements = math.prod(shape)
            if elements > MAX_TENSOR_ELEMENTS:
                raise fail(i, f"output {shape[0]}x{shape[1]}x{shape[2]} = {elements:,} values per image exceed "
                              f"{MAX_TENSOR_ELEMENTS:,}, the most one tensor may hold")
            activations += 4 * elements
            stored += values
            out.append(LayerShape(i, self.types[i], spec, prev, shape, bflops, params, values))
            prev = shape
        if activations > MAX_ACTIVATION_BYTES:
            raise CfgError(self.source, f"at input {width}x{height} the layer outputs of one image take "
                                        f"{activations / 2**30:.1f} GiB (float32), over the "
                                        f"{MAX_ACTIVATION_BYTES // 2**30} GiB limit: use a smaller input size")
        if stored > MAX_FILE_VALUES:
            raise CfgError(self.source, f"{stored:,} weights ({4 * stored / 2**30:.1f} GiB as float32) exceed "
                                        f"{MAX_FILE_VALUES:,} (2 GiB, the most one ONNX file holds): "
                                        "fewer or narrower layers")
        return out

    def activation_bytes(self, width: int | None = None, height: int | None = None) -> int:
        """Bytes of every layer output of one image at ``width`` x ``height``, float32 (checked by shapes)."""
        return sum(4 * math.prod(s.output) for s in self.shapes(width, height))

    @property
    def file_values(self) -> int:
        """float32 values after the header in this network's .weights file."""
        return sum(s.file_values for s in self.shapes())


def build_network(cfg: DarknetCfg) -> Network:
    """Validate ``cfg`` and return its typed layers (raises CfgError naming file and line)."""
    r = _Reader(cfg, cfg.net)
    for key in cfg.net.options:
        if key not in NET_OPTIONS:
            logger.warning("%s:%s: [net] option %r is not a Darknet option; ignored",
                           cfg.source, cfg.net.line_of(key), key)
    side = " px, the largest input side yolov3_trt runs"
    net = NetSpec(r.int("width", 0, minimum=0, maximum=MAX_INPUT_SIDE, why=side),
                  r.int("height", 0, minimum=0, maximum=MAX_INPUT_SIDE, why=side), r.int("channels", 3, minimum=1))
    if not cfg.layers:
        raise cfg.error("the cfg has a [net] section but no layers")
    layers = tuple(_parse_layer(_Reader(cfg, s), i) for i, s in enumerate(cfg.layers))
    network = Network(net, layers, tuple(s.type for s in cfg.layers), tuple(s.line for s in cfg.layers),
                      cfg.source)
    if net.width and net.height:
        network.shapes()  # validates channel counts and references at the cfg's own size
    else:
        # Channel checks do not depend on size; check them at a size every YOLO stride divides.
        network.shapes(608, 608)
    return network
