"""``python -m yolov3_trt.build``: a TensorRT engine (+ sidecar) from ONNX, or from cfg + weights end to end.

    python -m yolov3_trt.build --model yolov3-416.onnx --fp16 --batch 1:4:8
    python -m yolov3_trt.build --cfg yolov3 --weights yolov3.weights --int8 --calib images/

From cfg/weights/checkpoint the steps are export -> [quantize] -> build. The exported graph is
the ``plugin`` flavour (decode + NMS as one CUDA plugin node) when the TensorRT here compiles
quickly deployable plugins ahead of time (>= 10.9), else ``end2end`` (decode in ONNX ops and
TensorRT's own NMS layer); the tool says which. Without TensorRT or a GPU every step that needs
neither still runs, and the tool exits 2 naming the ONNX that is ready to build on the device.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..cli.common import (UsageError, add_model_args, add_postprocess_args, add_quantize_args, check_quantize_args,
                          make_parser, positive_int, run)
from ..cli.outputs import FORCE, OutputError, add_force_arg, check_output_file, existing_inputs, model_inputs
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET
from .device import supports_aot_plugin, tensorrt_module
from .sidecar import HARDWARE_COMPATIBILITY
from .steps import BuildOptions

logger = logging.getLogger("yolov3_trt.build")


def parse_batch(text: str) -> tuple[int, int, int]:
    """``8`` -> (8, 8, 8); ``1:4:8`` -> (1, 4, 8), with 1 <= min <= opt <= max."""
    try:
        values = tuple(int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN:OPT:MAX, got {text!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX")
    return values  # type: ignore[return-value]


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.build", __doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--model", default=None, metavar="PATH",
                        help="ONNX file to build (from python -m yolov3_trt.export or quantize); "
                             "instead of --cfg/--weights/--checkpoint")
    add_model_args(parser)
    add_quantize_args(parser)
    add_postprocess_args(parser, DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET)
    g = parser.add_argument_group("engine")
    g.add_argument("--output", default=None, metavar="PATH",
                   help="engine file (default: beside the ONNX, <onnx stem>.engine); the sidecar is PATH.json; "
                        "ONNX files made on the way go beside it")
    add_force_arg(g, help="replace an existing engine and sidecar, and the exported or quantized ONNX files an "
                          "earlier build left (never --model or another input)")
    g.add_argument("--flavour", choices=("auto", "raw", "end2end", "plugin"), default="auto",
                   help="graph exported from --cfg/--checkpoint; auto: plugin on TensorRT >= 10.9, else end2end")
    g.add_argument("--batch", type=parse_batch, default=(1, 1, 1), metavar="N|MIN:OPT:MAX",
                   help="optimisation profile: batch sizes the engine accepts, tuned for OPT")
    g.add_argument("--workspace", type=positive_int, default=None, metavar="MIB",
                   help="builder workspace limit in MiB (default: TensorRT's, the GPU's memory)")
    g.add_argument("--builder-optimization-level", type=int, choices=range(6), default=None, metavar="0-5",
                   help="TensorRT builder optimisation level (default: TensorRT's, 3; higher builds longer)")
    g.add_argument("--timing-cache", default=None, metavar="PATH",
                   help="timing cache file, read and updated (default: one per TensorRT version and GPU "
                        "under ~/.cache/yolov3_trt)")
    g.add_argument("--dla-core", type=int, default=None, metavar="N",
                   help="Jetson: run on DLA core N, layers it cannot run fall back to the GPU")
    g.add_argument("--hardware-compatible", choices=HARDWARE_COMPATIBILITY, default="none",
                   help="ampere+: the engine runs on any GPU of sm 8.0+; same-cc: any GPU of this compute "
                        "capability (TensorRT >= 10.4); both may run slower")
    g.add_argument("--version-compatible", action="store_true",
                   help="the engine also runs on later TensorRT releases of the same major version")
    g.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device index")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.model:
        clash = [f for f, v in (("--cfg", args.cfg), ("--weights", args.weights), ("--checkpoint", args.checkpoint),
                                ("--classes", args.classes), ("--names", args.names)) if v]
        if clash:
            raise UsageError(f"--model is an ONNX that carries its cfg and class names: drop {', '.join(clash)}")
        if args.flavour != "auto":
            raise UsageError("--flavour chooses the graph exported from --cfg/--checkpoint; --model already is one")
    elif not (args.weights or args.checkpoint):
        raise UsageError("nothing to build: give --model FILE.onnx, or --cfg with --weights, or --checkpoint")
    check_quantize_args(args)


def _choose_flavour(requested: str, trt_version: str | None) -> str:
    if requested != "auto":
        return requested
    if trt_version is None:
        logger.info("no TensorRT here: exporting the end2end graph (TensorRT's NMS layer), which every TensorRT "
                    "from 10.3 builds; on TensorRT >= 10.9, --flavour plugin uses the decode+NMS plugin")
        return "end2end"
    if supports_aot_plugin(trt_version):
        logger.info("TensorRT %s compiles quickly deployable plugins ahead of time: using the decode+NMS "
                    "plugin graph", trt_version)
        return "plugin"
    logger.info("TensorRT %s is older than 10.9 (no ahead-of-time plugins): using the end2end graph with "
                "TensorRT's own NMS layer", trt_version)
    return "end2end"


def _export(args: argparse.Namespace, folder: Path, flavour: str, *, announce: bool = True) -> Path:
    from ..cli.models import load_torch_model
    from ..export.onnx_export import export_onnx
    from ..fileio import file_sha256

    model, names = load_torch_model(args)
    source = Path(args.checkpoint or args.weights)
    path = folder / f"{source.stem}-{flavour}.onnx"
    thresholds = {} if flavour == "raw" else {"conf": args.conf, "iou": args.iou, "max_det": args.max_det}
    export_onnx(model, path, names, flavour=flavour, size=args.size, **thresholds,
                weights_sha256=file_sha256(source), source=source.name)
    if announce:
        print(f"exported {path} ({flavour} graph)")
    return path


def _precision(args: argparse.Namespace) -> str:
    return "fp16" if args.fp16 else "int8"


def _quantize(args: argparse.Namespace, onnx_path: Path, folder: Path, *, announce: bool = True) -> Path:
    from ..quantize import quantize_fp16, quantize_int8

    out = folder / f"{onnx_path.stem}-{_precision(args)}.onnx"
    if args.fp16:
        quantize_fp16(onnx_path, out)
    else:
        quantize_int8(onnx_path, out, args.calib, target="tensorrt", method=args.calib_method,
                      num_images=args.calib_images, seed=args.calib_seed, cache_dir=args.calib_cache)
    if announce:
        print(f"wrote {out} ({_precision(args)})")
    return out


def _build_flags(args: argparse.Namespace) -> str:
    """The flags to repeat on the target device (everything about the engine, nothing about the ONNX)."""
    flags = [f"--batch {':'.join(map(str, args.batch))}"]
    for flag, value in (("--workspace", args.workspace), ("--builder-optimization-level",
                                                            args.builder_optimization_level),
                        ("--dla-core", args.dla_core)):
        if value is not None:
            flags.append(f"{flag} {value}")
    if args.hardware_compatible != "none":
        flags.append(f"--hardware-compatible {args.hardware_compatible}")
    if args.version_compatible:
        flags.append("--version-compatible")
    return " ".join(flags)


def _planned_onnx(args: argparse.Namespace, out_folder: Path, flavour: str | None) -> tuple[list[Path], Path]:
    """(the ONNX files this build writes on the way, the ONNX it compiles), named as ``_export``
    and ``_quantize`` name them (with a precision, the export is a temporary step)."""
    precision = _precision(args) if args.fp16 or args.int8 else None
    if args.model:
        written = [out_folder / f"{Path(args.model).stem}-{precision}.onnx"] if precision else []
        return written, written[-1] if written else Path(args.model)
    stem = f"{Path(args.checkpoint or args.weights).stem}-{flavour}"
    written = [out_folder / (f"{stem}-{precision}.onnx" if precision else f"{stem}.onnx")]
    return written, written[-1]


def _check_outputs(args: argparse.Namespace, out_folder: Path, flavour: str | None) -> None:
    """Every file the build writes, checked before any export, calibration or build (OutputError):
    the ONNX made on the way, the engine and its sidecar; none may be an input."""
    from .sidecar import sidecar_path

    inputs = model_inputs(args) + existing_inputs(args.calib)
    written, compiled = _planned_onnx(args, out_folder, flavour)
    for path in written:
        if path.exists() and not args.force:
            raise OutputError(path, f"exists (an earlier build's ONNX?); pass {FORCE} to make it again, or build it "
                                    f"as it is: python -m yolov3_trt.build --model {path}")
        check_output_file(path, inputs=inputs, force=args.force)
    engine = Path(args.output) if args.output else compiled.with_suffix(".engine")
    for path in (engine, sidecar_path(engine)):
        check_output_file(path, inputs=inputs + written, force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check_args(args)
    trt, _ = tensorrt_module()
    trt_version = None if trt is None else str(trt.__version__)
    out_folder = Path(args.output).parent if args.output else (Path(args.model).parent if args.model else Path("."))
    if args.model and not Path(args.model).is_file():
        raise UsageError(f"{args.model}: no such ONNX file")
    flavour = None if args.model else _choose_flavour(args.flavour, trt_version)
    _check_outputs(args, out_folder, flavour)
    from .pipeline import build_engine, read_onnx, require_tensorrt

    precision = args.fp16 or args.int8
    if args.model:
        onnx_path = Path(args.model)
        if not onnx_path.is_file():
            raise UsageError(f"{onnx_path}: no such ONNX file")
        width, height = read_onnx(onnx_path)[0].input_size  # checked before any calibration
        if args.size and tuple(args.size) != (width, height):
            raise UsageError(f"{onnx_path} has input {width}x{height}; --size cannot change it: re-export at the "
                             "size you want")
        if precision:  # an end2end/plugin graph: quantize cuts its tail off and puts it back
            onnx_path = _quantize(args, onnx_path, out_folder)
    elif precision:  # the FP32 export is only a step: the one file written is the quantized one
        with tempfile.TemporaryDirectory(prefix="yolov3_trt-build-") as tmp:
            exported = _export(args, Path(tmp), flavour, announce=False)
            onnx_path = _quantize(args, exported, out_folder)
    else:
        onnx_path = _export(args, out_folder, flavour)
    _, device = require_tensorrt(onnx_path, _build_flags(args), args.device)
    output = Path(args.output) if args.output else onnx_path.with_suffix(".engine")
    options = BuildOptions(batch=args.batch, workspace_mib=args.workspace,
                           optimization_level=args.builder_optimization_level, dla_core=args.dla_core,
                           hardware_compatibility=args.hardware_compatible,
                           version_compatible=args.version_compatible)
    info = build_engine(onnx_path, output, options, device=device, timing_cache=args.timing_cache,
                        verbose=args.verbose)
    print(f"wrote {output} and {output.name}.json: {info.precision}, {info.flavour} graph, input "
          f"{info.input_size[0]}x{info.input_size[1]}, batch {':'.join(map(str, info.batch))}, TensorRT "
          f"{info.tensorrt_version} on {info.gpu_name} (sm {device.sm})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
