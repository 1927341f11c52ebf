"""What the Detector adds to a network's own time, measured interleaved: ``python benchmarks/detector_overhead.py``.

``fps.py`` times each configuration in turn, so two rows a minute apart see different machine
states (a shared 2-core VM moved 5-15 % between rows and runs in this project's measurements),
which is as large as the 1.05x target itself. This benchmark times the two things the target
compares in alternation, round by round, on the same file: the Detector end to end (letterbox +
inference + decode/NMS, ``detect`` on a photo) and OpenVINO's own network time (the model read
and compiled as the openvino backend does, ``infer`` on a blob). Both see the same machine
state, so their ratio holds however loaded the machine is.

The file is the fastest INT8 of fps.py's run (yolov3-416 random weights, the INT8 file placed
for TensorRT, batch 1; made as fps.py makes it), one Detector per resize kernel. Writes
``detector_overhead.json`` (medians, the per-round ratio's median and quartiles, the machine) to
--output and prints one line per kernel.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fps import DEFAULT_PHOTO, Bench  # noqa: E402
from machine import machine_info, physical_cores  # noqa: E402


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/detector_overhead.py", description=__doc__.split("\n")[0])
    add_flag(p, "--cfg", default="yolov3")
    add_flag(p, "--weights", default_text="random, as fps.py")
    add_flag(p, "--size", default=(416, 416), default_text="416")
    p.add_argument("--precision", choices=("int8-tensorrt", "int8-cpu", "fp32"), default="int8-tensorrt",
                   help="the file to time (made as fps.py makes it)")
    add_flag(p, "--resize-kernels", default="darknet,opencv")
    add_flag(p, "--calib", default=str(DEFAULT_PHOTO.parent), default_text="the Darknet samples; speed does not "
             "depend on them")
    add_flag(p, "--calib-images", default=4)
    add_flag(p, "--warmup", default=5)
    add_flag(p, "--runs", default=60)
    add_flag(p, "--threads", default=physical_cores(), default_text="the physical cores")
    add_flag(p, "--image", default=str(DEFAULT_PHOTO), default_text="Darknet's dog.jpg")
    add_flag(p, "--output", default="runs/benchmarks", metavar="DIR", help="folder for detector_overhead.json")
    return p


def _quartiles(values: list[float]) -> dict[str, float]:
    q1, q2, q3 = np.percentile(np.asarray(values), [25, 50, 75])
    return {"p25": float(q1), "p50": float(q2), "p75": float(q3)}


def measure(detector, request, image: np.ndarray, blob: np.ndarray, warmup: int, runs: int) -> dict:
    """Alternate ``detector.detect(image)`` and ``request.infer`` on ``blob``, ``runs`` rounds after ``warmup``."""
    import time

    for _ in range(warmup):
        detector.detect(image)
        request.infer({0: blob})
    end_to_end, network, parts = [], [], {"preprocess": [], "infer": [], "postprocess": []}
    for _ in range(runs):
        detector.detect(image)
        end_to_end.append(detector.last_timings["total"])
        for key in parts:
            parts[key].append(detector.last_timings[key])
        began = time.perf_counter()
        request.infer({0: blob})
        network.append(1000.0 * (time.perf_counter() - began))
    ratios = [a / b for a, b in zip(end_to_end, network)]
    return {"end_to_end_ms": _quartiles(end_to_end), "network_ms": _quartiles(network),
            "parts_p50_ms": {k: float(np.median(v)) for k, v in parts.items()},
            "ratio_of_medians": float(np.median(end_to_end) / np.median(network)),
            "ratio_per_round": _quartiles(ratios)}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.size[0] != args.size[1]:
        print(f"error: --size {args.size[0]}x{args.size[1]}: give one N (square, as fps.py)", file=sys.stderr)
        return 2
    import openvino as ov

    from yolov3_trt.fileio import atomic_write_json
    from yolov3_trt.runtime.backends.openvino_backend import compile_config, model_as_run
    from yolov3_trt.runtime.detector import Detector

    size = args.size[0]
    kernels = [k for k in args.resize_kernels.split(",") if k] if isinstance(args.resize_kernels, str) \
        else list(args.resize_kernels)
    results = []
    with tempfile.TemporaryDirectory(prefix="yolov3_trt-overhead-") as tmp:
        bench = Bench(args, Path(tmp))
        path = bench.onnx(size, args.precision)
        core = ov.Core()
        compiled = core.compile_model(model_as_run(core, path), "CPU", compile_config("f32", args.threads))
        request = compiled.create_infer_request()
        blob = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        for kernel in kernels:
            with Detector(path, "openvino", threads=args.threads, resize_kernel=kernel) as detector:
                row = measure(detector, request, bench.image, blob, args.warmup, args.runs)
            results.append({"resize_kernel": kernel, **row})
            print(f"{args.precision} on openvino, {kernel} resize: Detector {row['end_to_end_ms']['p50']:.1f} ms "
                  f"end to end, network {row['network_ms']['p50']:.1f} ms, interleaved over {args.runs} rounds: "
                  f"{row['ratio_of_medians']:.3f}x (per round {row['ratio_per_round']['p25']:.3f}-"
                  f"{row['ratio_per_round']['p75']:.3f}); preprocess {row['parts_p50_ms']['preprocess']:.2f} ms, "
                  f"postprocess {row['parts_p50_ms']['postprocess']:.2f} ms")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "detector_overhead.json", {
        "command": "python benchmarks/detector_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(), "size": size, "precision": args.precision, "threads": args.threads,
        "runs": args.runs, "target": 1.05, "rows": results})
    print(f"wrote {out / 'detector_overhead.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
