"""Argument groups every tool shares and the wrapper that turns user errors into exit code 2.

Flags mean the same thing in every tool (DESIGN.md section 2), so each tool builds its parser
from these groups instead of declaring its own spelling.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from ..errors import YoloV3TrtError

EXIT_USER_ERROR = 2


class UsageError(YoloV3TrtError):
    """A flag combination that makes no sense."""


def parse_size(text: str) -> tuple[int, int]:
    """``416`` or ``608x416`` (width x height) -> (width, height), each a positive multiple of 32."""
    parts = text.lower().split("x")
    try:
        if len(parts) == 1:
            width = height = int(parts[0])
        elif len(parts) == 2:
            width, height = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or WxH, got {text!r}") from None
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive multiples of 32")
    return width, height


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones ("None", "False") that say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def add_model_args(parser: argparse.ArgumentParser, *, weights: bool = True, names: bool = True) -> None:
    """--cfg, --weights, --checkpoint, --classes, --names, --size (weights and names optional)."""
    g = parser.add_argument_group("model")
    g.add_argument("--cfg", default=None, metavar="PATH|NAME",
                   help="Darknet cfg file or built-in name: yolov3, yolov3-tiny, yolov3-spp (default: yolov3)")
    if weights:
        g.add_argument("--weights", default=None, metavar="PATH|NAME",
                       help="Darknet .weights for --cfg, or an official name: yolov3, yolov3-tiny, yolov3-spp "
                            "(Darknet's COCO weights, downloaded once into ~/.cache/yolov3_trt/weights or "
                            "$YOLOV3_TRT_CACHE/weights; implies --cfg of that name; an existing file wins)")
        g.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="yolov3_trt PyTorch checkpoint (carries its own cfg and class names)")
    g.add_argument("--classes", type=positive_int, default=None, metavar="N",
                   help="class count for the heads (filters follow); default: the cfg's")
    if names:
        g.add_argument("--names", default=None, metavar="PATH", help="class names file, one per line")
    g.add_argument("--size", type=parse_size, default=None, metavar="N|WxH",
                   help="network input size, multiples of 32 (default: the cfg's width x height)")


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--model, --backend."""
    g = parser.add_argument_group("runtime")
    g.add_argument("--model", default=None, metavar="PATH",
                   help="exported model: .onnx, a TensorRT .engine with its sidecar, or a checkpoint .pt; "
                        "carries its cfg, size and names")
    g.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt"),
                   help="inference backend; auto picks by model file type and hardware")


def add_postprocess_args(parser: argparse.ArgumentParser, conf: float | None, iou: float | None,
                         max_det: int | None) -> None:
    """--conf, --iou, --max-det (None: the model's or the package's default)."""
    g = parser.add_argument_group("post-processing")

    def default(value, fallback: str) -> str:  # argparse shows a set default itself
        return "" if value is not None else f" (default: {fallback})"

    g.add_argument("--conf", type=_probability, default=conf,
                   help="score threshold on objectness x class probability" + default(conf, "0.5, Darknet's"))
    g.add_argument("--iou", type=_probability, default=iou, help="per-class NMS IoU threshold" + default(iou, "0.45"))
    g.add_argument("--max-det", type=positive_int, default=max_det,
                   help="detections kept per image" + default(max_det, "100"))


CALIB_METHODS = ("entropy", "max", "percentile")
CALIB_IMAGES = 128  # = yolov3_trt.calibration.DEFAULT_NUM_IMAGES (kept here so parsers import nothing heavy)


def add_quantize_args(parser: argparse.ArgumentParser) -> None:
    """--fp16 | --int8, --calib, --calib-method, --calib-images, --calib-seed, --calib-cache.

    Default precision (neither flag) is FP32. ``--calib`` is required with ``--int8``; callers
    check that with :func:`check_quantize_args`.
    """
    g = parser.add_argument_group("precision and calibration")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--fp16", action="store_true", help="FP16 (mixed, FP32 inputs/outputs)")
    mode.add_argument("--int8", action="store_true", help="INT8 Q/DQ calibrated on --calib images")
    g.add_argument("--calib", default=None, metavar="PATH",
                   help="calibration images: a folder, an image list .txt or a COCO .json (labels, when "
                        "present, stratify the sample by class)")
    g.add_argument("--calib-method", default="entropy", choices=CALIB_METHODS,
                   help="activation range method (TensorRT/ModelOpt: entropy, max; CPU/ONNX Runtime: all three)")
    g.add_argument("--calib-images", type=positive_int, default=CALIB_IMAGES, metavar="N",
                   help="images sampled from --calib")
    g.add_argument("--calib-seed", type=int, default=0, metavar="N", help="sampling seed")
    g.add_argument("--calib-cache", default=None, metavar="DIR",
                   help="keep calibrated models here; an identical request (model, images, method, size) "
                        "is copied instead of calibrated again")


def check_quantize_args(args: argparse.Namespace) -> None:
    """UsageError for --int8 without --calib, or calibration flags without --int8."""
    if args.int8 and not args.calib:
        raise UsageError("--int8 needs calibration images: give --calib PATH (a folder of typical input images)")
    if args.calib and not args.int8:
        raise UsageError("--calib is used only with --int8")
    given = [flag for flag, value, default in (("--calib-method", args.calib_method, "entropy"),
                                                 ("--calib-images", args.calib_images, CALIB_IMAGES),
                                                 ("--calib-seed", args.calib_seed, 0),
                                                 ("--calib-cache", args.calib_cache, None)) if value != default]
    if given and not args.int8:
        raise UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} used only with --int8")


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main``: user errors print one line to stderr and return 2; Ctrl-C returns 130."""
    verbose = "-v" in (sys.argv[1:] if argv is None else argv) or "--verbose" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(argv)
    except YoloV3TrtError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
