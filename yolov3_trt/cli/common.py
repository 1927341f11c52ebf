"""The parser every tool starts from, its help formatter, and the wrapper that turns errors into exit codes.

:func:`make_parser` gives a parser whose argparse errors are one line (exit 2) and whose help
shows each default once. The flags themselves are defined in :mod:`yolov3_trt.cli.flags` and
grouped in :mod:`yolov3_trt.cli.args`. :func:`run` prints every user error as one line, exit 2:
the project's own errors, a flag argparse refuses, and an optional package that the runtime-only
install (``pip install .``) lacks, with the extra that brings it; an environment failure (CUDA,
out of memory) is one line, exit 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, NoReturn, Sequence

from ..errors import EnvironmentFailure, UsageError, YoloV3TrtError  # noqa: F401 (UsageError: re-exported)
from .types import comma_list, int_at_least, one_of, parse_size, positive_int, probability  # noqa: F401 (re-exported)

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1  # the environment or a library failed (EnvironmentFailure): one line too

# Import name -> (requirement as setup.py spells it, extras bringing it, in the order to suggest).
# tests/test_options.py checks this against pyproject.toml's extras. Modules of the base install are
# listed too: missing, they mean a broken install rather than a missing extra.
OPTIONAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch>=2.1", ("train",)),
    "onnx": ("onnx>=1.15", ("train", "quantize", "trt", "openvino")),
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



class HelpFormatter(argparse.HelpFormatter):
    """Shows each default once, after the help line: the flag's ``default_text`` when the tool set
    one (``add_flag``), else the value unless it says nothing (None, False, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = getattr(action, "default_text", None)
        if shown is None and action.option_strings and not _says_nothing(action.default):
            shown = action.default
        return f"{text} (default: {str(shown).replace('%', '%%')})" if shown is not None else text


def _says_nothing(value: Any) -> bool:
    return value is None or value is False or value is True or value == argparse.SUPPRESS or value in ((), [])


_HelpFormatter = HelpFormatter  # the earlier name


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (``error: argument --size: ...``), exit 2.

    argparse prints the whole usage block before its error; for tools with thirty flags that
    buries the one line that matters, and the contract is one line per user error.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def make_parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


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
    verbose = ("-v" in (sys.argv[1:] if argv is None else argv)
               or "--verbose" in (sys.argv[1:] if argv is None else argv))
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


def add_quantize_args(parser: argparse.ArgumentParser) -> None:
    """--fp16 | --int8 and the calibration flags: :class:`yolov3_trt.cli.args.PrecisionArgs`."""
    from .args import PrecisionArgs

    PrecisionArgs().add_parser_args(parser)


def check_quantize_args(args: argparse.Namespace) -> None:
    """:meth:`yolov3_trt.cli.args.PrecisionArgs.parse`'s checks on a parsed namespace."""
    from .args import PrecisionArgs

    PrecisionArgs().parse(args)


CALIB_IMAGES = 128  # = yolov3_trt.cli.args.CALIB_IMAGES (tests/quantize checks both against calibration's)
