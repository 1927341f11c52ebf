"""Argument groups every tool shares and the wrapper that turns user errors into exit code 2.

Flags mean the same thing in every tool (DESIGN.md section 2), so each tool builds its parser
from these groups instead of declaring its own spelling. :func:`run` prints every user error as
one line: the project's own errors, a flag argparse refuses, and an optional package that the
runtime-only install (``pip install .``) lacks, with the extra that brings it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, NoReturn, Sequence

from ..darknet.layers import MAX_INPUT_SIDE
from ..errors import EnvironmentFailure, UsageError, YoloV3TrtError

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1  # the environment or a library failed (EnvironmentFailure): one line too

# Import name -> (requirement as setup.py spells it, extras bringing it, in the order to suggest).
# tests/test_options.py checks this against pyproject.toml's extras. Modules of the base install are
# listed too: missing, they mean a broken install rather than a missing extra.
OPTIONAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch>=2.1", ("train",)),
    "onnx": ("onnx>=1.15", ("train", "quantize", "trt")),
    "onnxslim": ("onnxslim>=0.1.30", ("train", "quantize")),
    "pycocotools": ("pycocotools>=2.0.7", ("train",)),
    "modelopt": ("nvidia-modelopt>=0.47,<0.48", ("quantize",)),
    "onnx_graphsurgeon": ("onnx-graphsurgeon>=0.6.1", ("quantize",)),
    "polygraphy": ("polygraphy>=0.53.4", ("quantize",)),
    "onnxscript": ("onnxscript", ("quantize",)),
    "ml_dtypes": ("ml_dtypes", ("quantize",)),
    "lief": ("lief", ("quantize",)),
    "tensorrt": ("tensorrt>=10.3", ("trt",)),
    "cuda": ("cuda-python>=12.6,<13", ("trt",)),
    "torchvision": ("torchvision", ("dev",)),
    "tritonclient": ("tritonclient[grpc]>=2.40", ("dev",)),
    "openvino": ("openvino>=2024.0", ("openvino",)),
    "matplotlib": ("matplotlib>=3.6", ("train", "bench")),  # plots only: a robot's runtime install has none
}
BASE_MODULES: dict[str, str] = {"numpy": "numpy>=1.23", "cv2": "opencv-python-headless>=4.8",
                                "onnxruntime": "onnxruntime>=1.17", "tqdm": "tqdm>=4.60"}
# A tool's own extra, preferred when a module comes with several (onnx: train, quantize, trt).
TOOL_EXTRAS: dict[str, str] = {"export": "train", "train": "train", "detect": "train", "evaluate": "train",
                               "anchors": "train", "quantize": "quantize", "build": "trt"}



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
    if max(width, height) > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be at most {MAX_INPUT_SIDE} px")
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


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``positive_int`` is ``int_at_least(1)``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value
    return parse


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse type for one item of a comma-separated list (argparse's ``choices`` sees the whole list)."""
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise argparse.ArgumentTypeError(f"unknown {text.strip()!r} (choose from {', '.join(choices)})")
        return text.strip()
    return parse


def comma_list(convert: Callable[[str], Any]) -> Callable[[str], list]:
    """An argparse type: comma-separated values, each through ``convert`` (``320,416`` -> [320, 416])."""
    def parse(text: str) -> list:
        values = [convert(v) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return values
    return parse


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones ("None", "False") that say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (``error: argument --size: ...``), exit 2.

    argparse prints the whole usage block before its error; for tools with thirty flags that
    buries the one line that matters, and the contract is one line per user error.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)
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


def _tool_name(main: Callable) -> str:
    """``python -m yolov3_trt.export`` for export's main; a script's file name for a script."""
    module = getattr(main, "__module__", None) or "__main__"
    if module == "__main__":  # python -m yolov3_trt.export runs the module as __main__; its spec has the name
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is None or not spec.name:
            return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "this tool"
        module = spec.name
    return "python -m " + module.removesuffix(".__main__")


def missing_module_message(err: ModuleNotFoundError, tool: str = "this tool") -> str | None:
    """The one-line advice for an optional package that is not installed, or None for any other module.

    ``tool`` ("python -m yolov3_trt.export") picks the extra when the module comes with several.
    """
    name = err.name or ""
    top = name.split(".")[0]
    if top in BASE_MODULES:
        return (f"{tool} needs {name}, which is missing although the base install includes it: "
                f"pip install \"{BASE_MODULES[top]}\" (or reinstall yolov3_trt: pip install .)")
    if top not in OPTIONAL_MODULES:
        return None
    requirement, extras = OPTIONAL_MODULES[top]
    preferred = TOOL_EXTRAS.get(tool.rsplit(".", 1)[-1])
    extra = preferred if preferred in extras else extras[0]
    distribution = requirement.split(">")[0].split("<")[0].split("[")[0]
    what = name if distribution == name else f"{name} ({distribution})"
    if extra == "dev":
        return f"{tool} needs {what}, which no install of yolov3_trt but [dev] brings: pip install \"{requirement}\""
    jetpack = " (on a Jetson, use JetPack's TensorRT instead)" if top == "tensorrt" else ""
    return (f"{tool} needs {what}, which the runtime install does not include: "
            f"pip install \".[{extra}]\" (from the yolov3_trt checkout){jetpack}")


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main``: user errors print one line to stderr and return 2; an
    :class:`~yolov3_trt.errors.EnvironmentFailure` (CUDA, out of memory) one line and 1; Ctrl-C 130.

    A ModuleNotFoundError for an optional package (torch, onnx, modelopt, tensorrt, ...) is a user
    error too: the runtime-only install lacks it, and the line names the extra to install. Any other
    missing module is a bug and keeps its traceback.
    """
    verbose = "-v" in (sys.argv[1:] if argv is None else argv) or "--verbose" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(argv)
    except YoloV3TrtError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except EnvironmentFailure as err:
        print(f"failed: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except ModuleNotFoundError as err:
        message = missing_module_message(err, _tool_name(main))
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
