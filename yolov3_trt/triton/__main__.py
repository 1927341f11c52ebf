"""``python -m yolov3_trt.triton``: a Triton Inference Server model repository from an engine or ONNX.

    python -m yolov3_trt.triton --model yolov3-int8.engine --output model_repository --instances 2
    tritonserver --model-repository model_repository

An engine is served by Triton's TensorRT backend (it must be built with the TensorRT version of
the Triton release that serves it, on the same GPU model); an ONNX by its ONNX Runtime backend.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..cli.common import make_parser, positive_int, run
from ..cli.outputs import add_force_arg, check_output_file, existing_inputs
from .repository import TritonOptions, write_repository


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 4,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be >= 1")
    return values


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
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="TensorRT engine (.engine/.plan with its sidecar) or ONNX file")
    parser.add_argument("--output", default="model_repository", metavar="DIR", help="model repository folder")
    parser.add_argument("--name", default=None, help="model name in Triton (default: the model file's stem)")
    parser.add_argument("--max-batch", type=positive_int, default=None, metavar="N",
                        help="max_batch_size (default: the engine's profile maximum, 8 for ONNX)")
    parser.add_argument("--preferred-batch", type=_batches, default=(), metavar="N,N",
                        help="dynamic batching's preferred sizes (default: max/2 and max)")
    parser.add_argument("--max-queue-delay-us", type=int, default=100, metavar="US",
                        help="how long dynamic batching waits to fill a batch")
    parser.add_argument("--instances", type=positive_int, default=1, metavar="N",
                        help="model instances (each its own execution context and stream)")
    parser.add_argument("--kind", choices=("gpu", "cpu"), default="gpu", help="instance kind (cpu: ONNX only)")
    parser.add_argument("--version", type=positive_int, default=1, help="model version folder")
    add_force_arg(parser, help="replace the files of an earlier repository for this model name and version "
                               "(config.pbtxt, labels.txt, the model file); never --model")
    args = parser.parse_args(argv)
    options = TritonOptions(name=args.name or Path(args.model).stem, max_batch=args.max_batch,
                            instances=args.instances, kind=args.kind, preferred_batch=args.preferred_batch,
                            max_queue_delay_us=args.max_queue_delay_us, version=args.version)
    _check_outputs(args, options)
    config = write_repository(args.model, args.output, options)
    print(f"wrote {config.parent}: {config.name}, labels.txt, {options.version}/ "
          f"(serve with: tritonserver --model-repository {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
