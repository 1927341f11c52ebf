"""``python -m yolov3_trt.quantize``: an FP32 ONNX export to FP16, or to INT8 Q/DQ calibrated on images.

INT8 comes in two placements, each for its engine (``--target``): ``tensorrt`` (NVIDIA ModelOpt:
symmetric, zero point 0, per-channel weights, FP16 elsewhere; what ``build --int8`` compiles)
and ``cpu`` (ONNX Runtime static quantization: uint8 activations, int8 per-channel weights; what
runs fast on ONNX Runtime). Both take the same seeded sample of --calib images, preprocessed as
at inference. The result keeps the model's metadata, so every yolov3_trt tool loads it.

With ``--max-ap-drop P --val DATA``, INT8 keeps its AP50 on DATA within P points of the FP32
model's: the Conv layers with the largest output error are left out of quantization until it
fits (``yolov3_trt.quantize.budget``), and a report (``.budget.json``, ``.budget.png``) is
written beside the output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..cli.args import BudgetArgs, PrecisionArgs
from ..cli.common import UsageError, make_parser, run
from ..cli.flags import add_flag, given_flags
from ..cli.outputs import add_force_arg, check_output_file, check_writable_folder, existing_inputs
from ..vocab import Target

SUFFIX = {"fp16": "-fp16", "tensorrt": "-int8-trt", "cpu": "-int8-cpu"}


PRECISION = PrecisionArgs(required=True)
BUDGET = BudgetArgs()


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.quantize", __doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="FP32 ONNX from python -m yolov3_trt.export (or --model)")
    add_flag(parser, "--model", dest="model_flag", default_text="MODEL")
    PRECISION.add_parser_args(parser)
    g = parser.add_argument_group("output")
    add_flag(g, "--target", default=Target.TENSORRT.value)
    add_flag(g, "--size", default_text="the model's own; given, it must match")
    add_flag(g, "--output", metavar="PATH", help="ONNX to write; an existing file needs --force, the source model "
             "is never replaced", default_text="MODEL's stem + -fp16, -int8-trt or -int8-cpu, beside it")
    add_force_arg(g, help="replace an existing --output ONNX (never MODEL) and, with --max-ap-drop, its report")
    BUDGET.add_parser_args(parser)
    return parser


def check_budget_outputs(output: Path, budget, inputs, force: bool) -> None:
    """The budget's ONNX and its report files, checked before any work (never an input, nor in an input folder)."""
    from .budget import report_paths

    folders = [p for p in BudgetArgs.inputs(budget) if Path(p).is_dir()]
    for path in (output, *report_paths(output)):
        check_output_file(path, inputs=inputs, force=force, input_folders=folders)


def quantize_with_budget(model, output: Path, args: argparse.Namespace, budget, target: str) -> dict:
    """``quantize_int8_budget`` with the parsed flags (quantize's and build's), and its summary printed."""
    from .budget import quantize_int8_budget

    report = quantize_int8_budget(model, output, args.calib, budget.val, max_ap_drop=budget.max_ap_drop,
                                  target=target, method=args.calib_method, num_images=args.calib_images,
                                  seed=args.calib_seed, cache_dir=args.calib_cache, holdout=budget.holdout,
                                  max_excluded=budget.max_excluded, progress=True)
    chosen, speed = report["chosen"], report["speed"]
    layers = ", ".join(str(n) for n in chosen["layers"])
    kept = (f"{chosen['k']} Conv layer{'s' if chosen['k'] != 1 else ''} in higher precision (Darknet layers "
            f"{layers})" if chosen["k"] else "every layer INT8")
    print(f"wrote {output} (INT8 for {target}, {kept}): AP50 {chosen['ap50']:.2f} against FP32 "
          f"{report['fp32_ap50']:.2f} on {report['val']['images']} images of {budget.val}, drop "
          f"{chosen['drop']:.2f} <= {budget.max_ap_drop:g} points")
    held = report["holdout"]
    if held is not None:
        print(f"held out: AP50 {held['ap50']:.2f} against FP32 {held['fp32_ap50']:.2f} on {held['images']} images "
              f"of {budget.holdout}, drop {held['drop']:.2f} <= {budget.max_ap_drop:g} points")
    else:
        print(f"no --holdout: the drop is measured on {budget.val}, the set that chose the layers")
    costs = [f"{name} {row['chosen_ms']:.1f} ms (all-INT8 {row['k0_ms']:.1f} ms)"
             for name, row in speed.items() if name in ("onnxruntime", "openvino") and row]
    print(f"CPU batch 1: {'; '.join(costs)}")
    print(f"report {report['files']['json']}, {report['files']['png']}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.model and args.model_flag and args.model != args.model_flag:
        raise UsageError(f"two models given: MODEL {args.model} and --model {args.model_flag}")
    model = args.model or args.model_flag
    if not model:
        raise UsageError("no model: give the FP32 ONNX file (MODEL or --model)")
    budget = BUDGET.parse(args)
    PRECISION.parse(args)
    if args.fp16 and "--target" in given_flags(args):
        raise UsageError("--target is used only with --int8 (one FP16 file serves every engine)")
    kind = "fp16" if args.fp16 else args.target
    output = Path(args.output) if args.output else Path(model).with_name(Path(model).stem + SUFFIX[kind] + ".onnx")
    inputs = existing_inputs(model, args.calib, *BUDGET.inputs(budget))
    check_output_file(output, inputs=inputs, force=args.force)
    if budget is not None:
        check_budget_outputs(output, budget, inputs, args.force)
    if args.calib_cache:
        check_writable_folder(args.calib_cache, option="--calib-cache")

    from . import quantize_fp16, quantize_int8
    from .model_io import load_source

    if args.fp16:
        load_source(model, args.size)
        quantize_fp16(model, output)
        print(f"wrote {output} (FP16, FP32 inputs/outputs)")
    elif budget is not None:
        load_source(model, args.size)
        quantize_with_budget(model, output, args, budget, args.target)
    else:
        quantize_int8(model, output, args.calib, target=args.target, method=args.calib_method,
                      num_images=args.calib_images, seed=args.calib_seed, cache_dir=args.calib_cache, size=args.size)
        print(f"wrote {output} (INT8 for {args.target}, {args.calib_method} calibration on "
              f"{args.calib_images} images from {args.calib})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
