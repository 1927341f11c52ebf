"""``python -m yolov3_trt.export``: a model (cfg + weights, or checkpoint) to ONNX."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ..cli.common import UsageError, add_model_args, add_postprocess_args, make_parser, run
from ..cli.models import load_torch_model
from ..cli.outputs import add_force_arg, check_not_input, check_output_file, existing_inputs, model_inputs
from ..plugin.params import DEFAULT_DEVICE_CAPACITY, max_device_capacity
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m yolov3_trt.export", __doc__.split("\n")[0].split(": ", 1)[1])
    add_model_args(parser)
    add_postprocess_args(parser, DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET)
    g = parser.add_argument_group("export")
    g.add_argument("--flavour", choices=("raw", "end2end", "plugin"), default="raw",
                   help="raw: the head tensors (decode + NMS outside); end2end: decode + NMS in the graph, "
                        "EfficientNMS outputs (--conf/--iou/--max-det are baked in); plugin: the same as one "
                        "CUDA plugin node (TensorRT >= 10.9 only)")
    g.add_argument("--output", default=None, metavar="PATH",
                   help="ONNX file to write (default: <weights or checkpoint stem>[-end2end|-plugin].onnx); an "
                        "existing file needs --force, an input is never replaced")
    add_force_arg(g, help="replace an existing --output ONNX (never one of the inputs)")
    g.add_argument("--batch", type=int, default=None, metavar="N", help="fixed batch size (default: dynamic)")
    g.add_argument("--opset", type=int, default=17,
                   help="ONNX opset: 17 up to the newest the installed torch exporter and onnx both write")
    g.add_argument("--pre-nms-top-k", type=int, default=None, metavar="K",
                   help=f"end2end/plugin: best candidates entering NMS (default {DEFAULT_PRE_NMS_TOP_K} for end2end, "
                        f"TensorRT's TopK limit; {DEFAULT_DEVICE_CAPACITY} for plugin, at most {max_device_capacity()})")
    g.add_argument("--resize", choices=("letterbox", "resize"), default="letterbox",
                   help="how runtimes must fit images to the input (stored in the metadata)")
    g.add_argument("--no-simplify", action="store_true", help="skip onnxslim's constant folding")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        raise UsageError("--batch must be >= 1")
    if args.flavour == "raw" and (args.conf, args.iou, args.max_det) != (DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET):
        raise UsageError("--conf/--iou/--max-det are baked in only with --flavour end2end or plugin; a raw graph "
                         "takes them at run time")
    if args.pre_nms_top_k is not None and args.pre_nms_top_k < 1:
        raise UsageError("--pre-nms-top-k must be >= 1")

    source = args.checkpoint or args.weights
    suffix = "" if args.flavour == "raw" else f"-{args.flavour}"
    if source is None:  # load_torch_model says what is missing
        output = None
    else:
        output = Path(args.output) if args.output else Path(f"{Path(source).stem}{suffix}.onnx")
        check_output_file(output, inputs=model_inputs(args), force=args.force)

    from ..fileio import file_sha256
    from .onnx_export import export_onnx

    model, names = load_torch_model(args)
    source = args.checkpoint or args.weights
    check_not_input(output, existing_inputs(source))  # --weights by name is now the cached file
    meta = export_onnx(model, output, names, flavour=args.flavour, size=args.size, batch=args.batch,
                       opset=args.opset, conf=args.conf, iou=args.iou, max_det=args.max_det,
                       pre_nms_top_k=args.pre_nms_top_k, resize=args.resize, weights_sha256=file_sha256(source),
                       source=Path(source).name, simplify=not args.no_simplify)
    width, height = meta.input_size
    print(f"wrote {output}: {args.flavour}, input {width}x{height}, batch {args.batch or 'dynamic'}, "
          f"{meta.num_classes} classes, strides {[s[0] for s in meta.strides]}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
