"""``python -m yolov3_trt.triton``: a Triton Inference Server model repository from an engine or ONNX.

    python -m yolov3_trt.triton --model yolov3-int8.engine --output model_repository --instances 2
    tritonserver --model-repository model_repository

An engine is served by Triton's TensorRT backend (it must be built with the TensorRT version of
the Triton release that serves it, on the same GPU model); an ONNX by its ONNX Runtime backend,
or with ``--backend openvino --kind cpu`` by its OpenVINO backend on CPU instances (the INT8
file made for TensorRT included; ``--openvino-precision bf16`` where the CPU has BF16).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..cli.args import RuntimeArgs
from ..cli.common import make_parser, run
from ..cli.flags import add_flag
from ..cli.outputs import add_force_arg, check_output_file, existing_inputs
from .repository import TritonOptions, write_repository

MODEL_FILES = {".engine": "model.plan", ".plan": "model.plan", ".onnx": "model.onnx"}


def _check_outputs(args: argparse.Namespace, options: TritonOptions) -> None:
    """The repository files, checked before anything is copied (OutputError): not the model or
    its sidecar, writable, and existing ones only with --force."""
    if not Path(args.model).is_file():
        return  # write_repository says so, before writing anything
    folder = Path(args.output) / options.name
    paths = [folder / "config.pbtxt", folder / "labels.txt"]
    model_file = MODEL_FILES.get(Path(args.model).suffix.lower())
    if model_file:  # another suffix: write_repository names the problem
        paths.append(folder / str(options.version) / model_file)
    inputs = existing_inputs(args.model, f"{args.model}.json")
    for path in paths:
        check_output_file(path, inputs=inputs, force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m yolov3_trt.triton", __doc__.split("\n")[0].split(": ", 1)[1])
    RuntimeArgs(required=True).add_parser_args(parser)
    add_flag(parser, "--output", default="model_repository", metavar="DIR", help="model repository folder")
    add_flag(parser, "--name", default_text="the model file's stem")
    add_flag(parser, "--max-batch", default_text="the engine's profile maximum, 8 for ONNX")
    add_flag(parser, "--preferred-batch", default_text="max/2 and max")
    add_flag(parser, "--max-queue-delay-us", default=100)
    add_flag(parser, "--instances", default=1)
    add_flag(parser, "--kind", default="gpu")
    add_flag(parser, "--version", default=1)
    g = parser.add_argument_group("openvino backend (--backend openvino --kind cpu)")
    add_flag(g, "--openvino-precision", default="f32")
    add_flag(g, "--threads", default_text="OpenVINO's: one per core")
    add_force_arg(parser, help="replace the files of an earlier repository for this model name and version "
                               "(config.pbtxt, labels.txt, the model file); never --model")
    args = parser.parse_args(argv)
    options = TritonOptions(name=args.name or Path(args.model).stem, max_batch=args.max_batch,
                            instances=args.instances, kind=args.kind, preferred_batch=tuple(args.preferred_batch or ()),
                            max_queue_delay_us=args.max_queue_delay_us, version=args.version,
                            backend=args.backend, openvino_precision=args.openvino_precision, threads=args.threads)
    _check_outputs(args, options)
    config = write_repository(args.model, args.output, options)
    print(f"wrote {config.parent}: {config.name}, labels.txt, {options.version}/ "
          f"(serve with: tritonserver --model-repository {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
