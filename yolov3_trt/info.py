"""``python -m yolov3_trt.info``: a cfg's layer table, BFLOPs and parameters, as Darknet prints them."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Sequence

from .cli.args import ModelArgs
from .cli.common import make_parser, run
from .cli.flags import add_flag
from .darknet.builtin import load_cfg, set_classes
from .darknet.layers import (
    AvgPoolSpec,
    ConvSpec,
    LayerShape,
    MaxPoolSpec,
    RouteSpec,
    ShortcutSpec,
    SoftmaxSpec,
    UpsampleSpec,
    build_network,
)
from .darknet.weights import expected_size
from .fileio import atomic_write_json


def _dims(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{w:4d} x{h:4d} x{c:4d}"


def layer_line(s: LayerShape) -> str:
    """One row of Darknet's table for layer ``s`` (same columns as ``darknet detector``)."""
    spec, io = s.spec, f"{_dims(s.input)}   ->  {_dims(s.output)}"
    if isinstance(spec, ConvSpec):
        groups = f" {spec.groups}g" if spec.groups > 1 else ""
        text = (f"conv  {spec.filters:5d}{groups} {spec.size:2d} x{spec.size:2d} /{spec.stride:2d}  "
                f"{io}  {s.bflops:5.3f} BFLOPs")
    elif isinstance(spec, MaxPoolSpec):
        text = f"max          {spec.size:2d} x{spec.size:2d} /{spec.stride:2d}  {io}"
    elif isinstance(spec, ShortcutSpec):
        text = f"res  {spec.from_layer:3d}                {io}"
    elif isinstance(spec, RouteSpec):
        text = "route " + " ".join(f"{j:d}" for j in spec.layers)
    elif isinstance(spec, UpsampleSpec):
        text = f"upsample           {spec.stride:2d}x  {io}"
    elif isinstance(spec, AvgPoolSpec):
        text = f"avg                     {_dims(s.input)}   ->  {s.output[0]:4d}"
    elif isinstance(spec, SoftmaxSpec):
        text = f"softmax                                        {s.output[0]:4d}"
    else:
        text = "yolo"
    return f"{s.index:5d} {text}"


def summarize(cfg_arg: str, classes: int | None, size: tuple[int, int] | None) -> dict[str, Any]:
    """Layer table and totals for a cfg at a size, as a JSON-ready dict."""
    cfg = load_cfg(cfg_arg)
    if classes is not None:
        set_classes(cfg, classes)
    network = build_network(cfg)
    width, height = size or (network.net.width, network.net.height)
    shapes = network.shapes(width, height)
    return {
        "cfg": cfg.source,
        "input": {"width": width, "height": height, "channels": network.net.channels},
        "layers": [{"index": s.index, "type": s.type, "input": list(s.input), "output": list(s.output),
                    "bflops": round(s.bflops, 6), "parameters": s.parameters, "text": layer_line(s)}
                   for s in shapes],
        "heads": [{"layer": h.layer, "classes": h.classes, "anchors": [list(a) for a in h.anchors],
                   "grid": [shapes[h.layer].output[2], shapes[h.layer].output[1]],
                   "stride": width // shapes[h.layer].output[2]} for h in network.heads()],
        "bflops": round(sum(s.bflops for s in shapes), 6),
        "parameters": sum(s.parameters for s in shapes),
        "weights_bytes": expected_size(network),
        # float32 outputs of every layer for one image: what the size limits (yolov3_trt.darknet.layers) bound
        "activation_bytes": sum(4 * math.prod(s.output) for s in shapes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m yolov3_trt.info", __doc__.split("\n")[0].split(": ", 1)[1])
    model_args = ModelArgs(weights=False, names=False)
    model_args.add_parser_args(parser)
    add_flag(parser, "--json", metavar="PATH", help="also write the table as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    model = model_args.parse(args)
    summary = summarize(model.cfg or "yolov3", model.classes, model.size)
    if args.json == "-":
        print(json.dumps(summary, indent=2))
        return 0
    print("layer     filters    size              input                output")
    for row in summary["layers"]:
        print(row["text"])
    inp = summary["input"]
    print(f"{summary['cfg']} at {inp['width']}x{inp['height']}: {summary['bflops']:.3f} BFLOPs, "
          f"{summary['parameters']:,} parameters, .weights file {summary['weights_bytes']:,} bytes")
    if args.json:
        atomic_write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
