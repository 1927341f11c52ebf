"""``python -m yolov3_trt.build``: a TensorRT engine (+ sidecar) from ONNX, or from cfg + weights end to end.

    python -m yolov3_trt.build --model yolov3-416.onnx --fp16 --batch 1:4:8
    python -m yolov3_trt.build --cfg yolov3 --weights yolov3.weights --int8 --calib images/
    python -m yolov3_trt.build --cfg yolov3 --weights yolov3.weights --int8 --calib images/ \
        --max-ap-drop 0.5 --val val.txt --holdout test.txt

From cfg/weights/checkpoint the steps are export -> [quantize] -> build. The exported graph is
the ``plugin`` flavour (decode + NMS as one CUDA plugin node) when the TensorRT here compiles
quickly deployable plugins ahead of time (>= 10.9), else ``end2end`` (decode in ONNX ops and
TensorRT's own NMS layer); the tool says which. Without TensorRT or a GPU every step that needs
neither still runs, and the tool exits 2 naming the ONNX that is ready to build on the device.
With ``--max-ap-drop`` the INT8 step keeps the most sensitive layers in FP16 until the AP50 drop
fits (``yolov3_trt.quantize.budget``, measured on ONNX Runtime's CPU as the graph's raw heads);
its report lands beside the quantized ONNX and the sidecar carries ``ap_budget`` with the
rest of the ONNX's metadata.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..cli.args import BudgetArgs, BudgetOptions, ModelArgs, PostprocessArgs, PrecisionArgs, RuntimeArgs, cuda_index
from ..cli.common import UsageError, make_parser, run
from ..cli.flags import add_flag
from ..cli.types import parse_batch  # noqa: F401 (the build tool's --batch, imported from here by tests)
from ..cli.outputs import FORCE, OutputError, add_force_arg, check_output_file, existing_inputs, model_inputs
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET
from yolov3_trt.tensorrt.device import supports_aot_plugin, tensorrt_module
from ..vocab import HardwareCompat
from .steps import BuildOptions

logger = logging.getLogger("yolov3_trt.build")


GROUPS = (ModelArgs(), RuntimeArgs(backend=False, size_with_model=True), PrecisionArgs(),
          PostprocessArgs(DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET))
BUDGET = BudgetArgs()


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.build", __doc__.split("\n")[0].split(": ", 1)[1])
    for group in GROUPS:
        group.add_parser_args(parser)
    BUDGET.add_parser_args(parser)
    g = parser.add_argument_group("engine")
    add_flag(g, "--output", metavar="PATH", help="engine file; the sidecar is PATH.json; ONNX files made on the way "
             "go beside it", default_text="beside the ONNX, <onnx stem>.engine")
    add_force_arg(g, help="replace an existing engine and sidecar, and the exported or quantized ONNX files an "
                          "earlier build left (never --model or another input)")
    add_flag(g, "--flavour", default="auto")
    add_flag(g, "--batch", default=(1, 1, 1), default_text="1")
    add_flag(g, "--workspace", default_text="TensorRT's, the GPU's memory")
    add_flag(g, "--builder-optimization-level", default_text="TensorRT's, 3")
    add_flag(g, "--timing-cache", default_text="one per TensorRT version and GPU under ~/.cache/yolov3_trt")
    add_flag(g, "--dla-core")
    add_flag(g, "--hardware-compatible", default=HardwareCompat.NONE.value)
    add_flag(g, "--version-compatible")
    add_flag(g, "--device", default="auto")
    return parser


def _check_args(args: argparse.Namespace):
    """The groups' options (model, runtime, precision, post-processing), checked together."""
    model = GROUPS[0].parse(args)
    runtime = GROUPS[1].parse(args, model)
    if runtime.model:
        if args.flavour != "auto":
            raise UsageError("--flavour chooses the graph exported from --cfg/--checkpoint; --model already is one")
    elif not (model.weights or model.checkpoint):
        raise UsageError("nothing to build: give --model FILE.onnx, or --cfg with --weights, or --checkpoint")
    budget = BUDGET.parse(args)
    precision = GROUPS[2].parse(args)
    cuda_index(args.device, "build")
    return model, precision, GROUPS[3].parse(args), budget


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
    from ..cli.models import load_model
    from ..export.onnx_export import export_onnx
    from ..fileio import file_sha256

    model, names, resolved = load_model(GROUPS[0].parse(args))
    source = Path(resolved.checkpoint or resolved.weights)
    path = folder / f"{source.stem}-{flavour}.onnx"
    thresholds = {} if flavour == "raw" else {"conf": args.conf, "iou": args.iou, "max_det": args.max_det}
    export_onnx(model, path, names, flavour=flavour, size=args.size, **thresholds,
                weights_sha256=file_sha256(source), source=source.name)
    if announce:
        print(f"exported {path} ({flavour} graph)")
    return path


def _precision(args: argparse.Namespace) -> str:
    return "fp16" if args.fp16 else "int8"


def _quantize(args: argparse.Namespace, onnx_path: Path, folder: Path, budget: BudgetOptions | None, *,
              announce: bool = True) -> Path:
    from ..quantize import quantize_fp16, quantize_int8

    out = folder / f"{onnx_path.stem}-{_precision(args)}.onnx"
    if args.fp16:
        quantize_fp16(onnx_path, out)
    elif budget is not None:  # the INT8 file within the AP50 budget, measured on its raw heads
        from ..quantize.__main__ import quantize_with_budget

        quantize_with_budget(onnx_path, out, args, budget, "tensorrt")
        return out
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


def _check_outputs(args: argparse.Namespace, out_folder: Path, flavour: str | None,
                   budget: BudgetOptions | None) -> None:
    """Every file the build writes, checked before any export, calibration or build (OutputError):
    the ONNX made on the way, the engine and its sidecar; none may be an input."""
    from yolov3_trt.tensorrt.sidecar import sidecar_path

    inputs = model_inputs(args) + existing_inputs(args.calib, *BudgetArgs.inputs(budget))
    written, compiled = _planned_onnx(args, out_folder, flavour)
    for path in written:
        if path.exists() and not args.force:
            raise OutputError(path, f"exists (an earlier build's ONNX?); pass {FORCE} to make it again, or build it "
                                    f"as it is: python -m yolov3_trt.build --model {path}")
        check_output_file(path, inputs=inputs, force=args.force)
    if budget is not None:  # the budget's report beside the quantized ONNX
        from ..quantize.__main__ import check_budget_outputs

        check_budget_outputs(written[-1], budget, inputs, args.force)
    engine = Path(args.output) if args.output else compiled.with_suffix(".engine")
    for path in (engine, sidecar_path(engine)):
        check_output_file(path, inputs=inputs + written, force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    budget = _check_args(args)[3]  # before any work; the steps below read the checked namespace
    trt, _ = tensorrt_module()
    trt_version = None if trt is None else str(trt.__version__)
    out_folder = Path(args.output).parent if args.output else (Path(args.model).parent if args.model else Path("."))
    if args.model and not Path(args.model).is_file():
        raise UsageError(f"{args.model}: no such ONNX file")
    flavour = None if args.model else _choose_flavour(args.flavour, trt_version)
    _check_outputs(args, out_folder, flavour, budget)
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
            onnx_path = _quantize(args, onnx_path, out_folder, budget)
    elif precision:  # the FP32 export is only a step: the one file written is the quantized one
        with tempfile.TemporaryDirectory(prefix="yolov3_trt-build-") as tmp:
            exported = _export(args, Path(tmp), flavour, announce=False)
            onnx_path = _quantize(args, exported, out_folder, budget)
    else:
        onnx_path = _export(args, out_folder, flavour)
    _, device = require_tensorrt(onnx_path, _build_flags(args), cuda_index(args.device, "build"))
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
