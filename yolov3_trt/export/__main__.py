"""``python -m yolov3_trt.export``: a model (cfg + weights, or checkpoint) to ONNX."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ..cli.args import ModelArgs, PostprocessArgs
from ..cli.common import UsageError, make_parser, run
from ..cli.flags import add_flag
from ..cli.models import load_model
from ..cli.outputs import add_force_arg, check_not_input, check_output_file, existing_inputs, model_inputs
from ..plugin.params import DEFAULT_DEVICE_CAPACITY, max_device_capacity
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K
from ..vocab import Flavour, ResizeMode


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m yolov3_trt.export", __doc__.split("\n")[0].split(": ", 1)[1])
    model_args, post_args = ModelArgs(), PostprocessArgs(DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET)
    model_args.add_parser_args(parser)
    post_args.add_parser_args(parser)
    g = parser.add_argument_group("export")
    add_flag(g, "--flavour", default="raw", choices=Flavour.values())
    add_flag(g, "--output", metavar="PATH", help="ONNX file to write; an existing file needs --force, an input is "
             "never replaced", default_text="<weights or checkpoint stem>[-end2end|-plugin].onnx")
    add_force_arg(g, help="replace an existing --output ONNX (never one of the inputs)")
    add_flag(g, "--batch", default_text="dynamic")
    add_flag(g, "--opset", default=17)
    add_flag(g, "--pre-nms-top-k", default_text=f"{DEFAULT_PRE_NMS_TOP_K} for end2end, TensorRT's TopK limit; "
             f"{DEFAULT_DEVICE_CAPACITY} for plugin, at most {max_device_capacity()}")
    add_flag(g, "--resize", default=ResizeMode.LETTERBOX.value)
    add_flag(g, "--no-simplify")
    args = parser.parse_args(argv)
    model_options, post = model_args.parse(args), post_args.parse(args)
    if args.batch is not None and args.batch[0] != args.batch[2]:
        raise UsageError(f"--batch {':'.join(map(str, args.batch))}: an ONNX batch is fixed (N) or dynamic (no "
                         "--batch); MIN:OPT:MAX is a TensorRT engine's profile (python -m yolov3_trt.build --batch)")
    batch = None if args.batch is None else args.batch[0]
    if args.flavour == "raw" and post.given:
        raise UsageError("--conf/--iou/--max-det are baked in only with --flavour end2end or plugin; a raw graph "
                         "takes them at run time")
    if args.pre_nms_top_k is not None and args.pre_nms_top_k < 1:
        raise UsageError("--pre-nms-top-k must be >= 1")

    source = model_options.checkpoint or model_options.weights
    suffix = "" if args.flavour == "raw" else f"-{args.flavour}"
    if source is None:  # load_torch_model says what is missing
        output = None
    else:
        output = Path(args.output) if args.output else Path(f"{Path(source).stem}{suffix}.onnx")
        check_output_file(output, inputs=model_inputs(model_options), force=args.force)

    from ..fileio import file_sha256
    from .onnx_export import export_onnx

    model, names, resolved = load_model(model_options)
    source = resolved.checkpoint or resolved.weights
    check_not_input(output, existing_inputs(source))  # --weights by name is now the cached file
    meta = export_onnx(model, output, names, flavour=args.flavour, size=model_options.size, batch=batch,
                       opset=args.opset, conf=args.conf, iou=args.iou, max_det=args.max_det,
                       pre_nms_top_k=args.pre_nms_top_k, resize=args.resize, weights_sha256=file_sha256(source),
                       source=Path(source).name, simplify=not args.no_simplify)
    width, height = meta.input_size
    print(f"wrote {output}: {args.flavour}, input {width}x{height}, batch {batch or 'dynamic'}, "
          f"{meta.num_classes} classes, strides {[s[0] for s in meta.strides]}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
