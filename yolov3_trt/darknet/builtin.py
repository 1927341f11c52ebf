"""The built-in cfgs (yolov3, yolov3-tiny, yolov3-spp), written as code, and cfg edits.

The builders produce the same layers as Darknet's official cfg files (tests compare them layer
by layer); :func:`set_classes` and :func:`set_anchors` adapt any cfg to a user's classes and
anchors, keeping each head's ``filters = len(mask) * (classes + 5)`` in step.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from ..errors import FileError
from .cfg import DarknetCfg, Section, parse_cfg

YOLOV3_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
TINY_ANCHORS = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_anchors(anchors: Sequence[tuple[float, float]]) -> str:
    """Anchors in cfg syntax: ``10,13,  16,30, ...``."""
    return ",  ".join(f"{_fmt(w)},{_fmt(h)}" for w, h in anchors)


class _Builder:
    """Appends sections and tracks the layer index, so routes can name absolute layers."""

    def __init__(self, name: str, width: int, height: int, classes: int, anchors):
        self.anchors, self.classes = anchors, classes
        self.sections = [Section("net", {
            "batch": "64", "subdivisions": "16", "width": str(width), "height": str(height),
            "channels": "3", "momentum": "0.9", "decay": "0.0005", "angle": "0", "saturation": "1.5",
            "exposure": "1.5", "hue": ".1", "learning_rate": "0.001", "burn_in": "1000",
            "max_batches": "500200", "policy": "steps", "steps": "400000,450000", "scales": ".1,.1"})]
        self.name = name

    @property
    def index(self) -> int:
        """Index the next layer gets."""
        return len(self.sections) - 1

    def add(self, kind: str, **options) -> int:
        self.sections.append(Section(kind, {k: str(v) for k, v in options.items()}))
        return self.index - 1

    def conv(self, filters: int, size: int, stride: int = 1) -> int:
        return self.add("convolutional", batch_normalize=1, filters=filters, size=size, stride=stride, pad=1,
                        activation="leaky")

    def head(self, mask: Sequence[int]) -> int:
        """A linear 1x1 conv with the filters the [yolo] after it needs, then the [yolo]."""
        self.add("convolutional", size=1, stride=1, pad=1, filters=len(mask) * (self.classes + 5),
                 activation="linear")
        return self.add("yolo", mask=",".join(map(str, mask)), anchors=format_anchors(self.anchors),
                        classes=self.classes, num=len(self.anchors), jitter=".3", ignore_thresh=".7",
                        truth_thresh=1, random=1)

    def route(self, *layers: int) -> int:
        return self.add("route", layers=", ".join(map(str, layers)))

    def cfg(self) -> DarknetCfg:
        return DarknetCfg(self.sections, f"<built-in {self.name}>")


def _darknet53(b: _Builder) -> tuple[int, int]:
    """Darknet-53 without its classifier; returns the layers that feed the 2nd and 3rd heads."""
    b.conv(32, 3)
    taps = []
    for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        b.conv(filters, 3, 2)  # downsample
        for _ in range(blocks):
            b.conv(filters // 2, 1)
            b.conv(filters, 3)
            b.add("shortcut", **{"from": -3, "activation": "linear"})
        taps.append(b.index - 1)
    return taps[2], taps[3]  # stride-8 and stride-16 outputs


def _yolov3_heads(b: _Builder, tap8: int, tap16: int, spp: bool) -> None:
    b.conv(512, 1)
    b.conv(1024, 3)
    b.conv(512, 1)
    if spp:  # spatial pyramid pooling: max pools of 5, 9, 13 at stride 1, concatenated
        b.add("maxpool", stride=1, size=5)
        b.route(-2)
        b.add("maxpool", stride=1, size=9)
        b.route(-4)
        b.add("maxpool", stride=1, size=13)
        b.route(-1, -3, -5, -6)
        b.conv(512, 1)
    b.conv(1024, 3)
    b.conv(512, 1)
    b.conv(1024, 3)
    b.head((6, 7, 8))
    for filters, tap, mask in ((256, tap16, (3, 4, 5)), (128, tap8, (0, 1, 2))):
        b.route(-4)
        b.conv(filters, 1)
        b.add("upsample", stride=2)
        b.route(-1, tap)
        for _ in range(3):
            b.conv(filters, 1)
            b.conv(filters * 2, 3)
        b.head(mask)


def yolov3(classes: int = 80, anchors=YOLOV3_ANCHORS, size: tuple[int, int] = (608, 608)) -> DarknetCfg:
    """YOLOv3: Darknet-53 and three heads at strides 32, 16, 8 (Darknet's yolov3.cfg)."""
    b = _Builder("yolov3", *size, classes, anchors)
    _yolov3_heads(b, *_darknet53(b), spp=False)
    return b.cfg()


def yolov3_spp(classes: int = 80, anchors=YOLOV3_ANCHORS, size: tuple[int, int] = (608, 608)) -> DarknetCfg:
    """YOLOv3 with spatial pyramid pooling in the first head (Darknet's yolov3-spp.cfg)."""
    b = _Builder("yolov3-spp", *size, classes, anchors)
    _yolov3_heads(b, *_darknet53(b), spp=True)
    return b.cfg()


def yolov3_tiny(classes: int = 80, anchors=TINY_ANCHORS, size: tuple[int, int] = (416, 416)) -> DarknetCfg:
    """YOLOv3-tiny: 7 convs with max pools, heads at strides 32 and 16 (yolov3-tiny.cfg)."""
    b = _Builder("yolov3-tiny", *size, classes, anchors)
    for i, filters in enumerate((16, 32, 64, 128, 256, 512)):
        b.conv(filters, 3)
        b.add("maxpool", size=2, stride=2 if i < 5 else 1)  # the last pool keeps 13x13
    b.conv(1024, 3)
    b.conv(256, 1)
    tap16 = 8  # the 256-filter conv before the 4th max pool: stride 16
    b.conv(512, 3)
    b.head((3, 4, 5))
    b.route(-4)
    b.conv(128, 1)
    b.add("upsample", stride=2)
    b.route(-1, tap16)
    b.conv(256, 3)
    b.head((0, 1, 2))
    return b.cfg()


BUILTIN_MODELS: dict[str, Callable[..., DarknetCfg]] = {
    "yolov3": yolov3,
    "yolov3-tiny": yolov3_tiny,
    "yolov3-spp": yolov3_spp,
}


def builtin_cfg(name: str, classes: int = 80, anchors: Sequence[tuple[float, float]] | None = None) -> DarknetCfg:
    """A built-in cfg by name, optionally with another class count and anchors."""
    cfg = BUILTIN_MODELS[name]()
    if classes != 80:
        set_classes(cfg, classes)
    if anchors is not None:
        set_anchors(cfg, anchors)
    return cfg


def load_cfg(path_or_name: str | os.PathLike) -> DarknetCfg:
    """A built-in cfg by name (``yolov3``, ``yolov3-tiny``, ``yolov3-spp``) or a cfg file."""
    if isinstance(path_or_name, str) and path_or_name in BUILTIN_MODELS:
        return BUILTIN_MODELS[path_or_name]()
    path = Path(path_or_name)
    if not path.exists() and not path.suffix:
        raise FileError(path, f"no such cfg file, nor a built-in model (built-ins: {', '.join(BUILTIN_MODELS)})")
    return parse_cfg(path)


def _yolo_sections(cfg: DarknetCfg) -> list[int]:
    indices = [i for i, s in enumerate(cfg.sections) if s.type == "yolo"]
    if not indices:
        raise cfg.error("has no [yolo] layer, so it has no class count or anchors to change")
    return indices


def set_classes(cfg: DarknetCfg, classes: int) -> DarknetCfg:
    """Give every [yolo] layer ``classes`` classes and the conv before it the matching filters."""
    if classes < 1:
        raise cfg.error(f"class count must be >= 1, got {classes}")
    for i in _yolo_sections(cfg):
        yolo, conv = cfg.sections[i], cfg.sections[i - 1]
        if conv.type != "convolutional":
            raise cfg.error(f"[yolo] follows [{conv.type}], not a [convolutional] whose filters could follow "
                            "the class count", yolo.line)
        num = int(yolo.options.get("num", "1"))
        mask = [m for m in yolo.options.get("mask", ",".join(map(str, range(num)))).split(",") if m]
        yolo.options["classes"] = str(classes)
        conv.options["filters"] = str(len(mask) * (classes + 5))
    return cfg


def set_anchors(cfg: DarknetCfg, anchors: Sequence[tuple[float, float]]) -> DarknetCfg:
    """Replace the anchors of every [yolo] layer; the count must equal each layer's ``num``."""
    text = format_anchors(anchors)
    for i in _yolo_sections(cfg):
        yolo = cfg.sections[i]
        num = int(yolo.options.get("num", "1"))
        if len(anchors) != num:
            raise cfg.error(f"{len(anchors)} anchors given but [yolo] has num={num}", yolo.line)
        if any(w <= 0 or h <= 0 for w, h in anchors):
            raise cfg.error("anchors must be positive")
        yolo.options["anchors"] = text
    return cfg


def set_input_size(cfg: DarknetCfg, width: int, height: int) -> DarknetCfg:
    """Set the [net] input size."""
    cfg.net.options["width"], cfg.net.options["height"] = str(width), str(height)
    return cfg
