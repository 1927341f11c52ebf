"""What makes the CPU INT8 file fast on ONNX Runtime: ``python benchmarks/int8_cpu_speed.py``.

yolov3 at 416 with random weights (speed does not depend on weight values), exported to FP32
ONNX, then quantized with ONNX Runtime's static QDQ in several placements: which op types get
Q/DQ, 7-bit weights (``reduce_range``, advised for pre-VNNI CPUs), per-tensor instead of
per-channel weights; plus ModelOpt's TensorRT placement when ModelOpt is installed. Inference
only (one ``session.run`` on a letterboxed photo, the backend's session options), measured in
interleaved rounds so that load from other processes hits every file alike; reports the best
and the median per file and the speed-up over FP32. Writes int8_cpu_speed.json to --output.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, physical_cores  # noqa: E402

DARKNET_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "darknet" / "images"
ALL = ("Conv", "LeakyRelu", "Add", "Concat", "MaxPool", "Resize")
VARIANTS = {
    "all ops (yolov3_trt default)": dict(op_types=ALL),
    "Conv only": dict(op_types=("Conv",)),
    "Conv + LeakyRelu": dict(op_types=("Conv", "LeakyRelu")),
    "all ops, reduce_range (7-bit weights)": dict(op_types=ALL, reduce_range=True),
    "all ops, per-tensor weights": dict(op_types=ALL, per_channel=False),
}


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/int8_cpu_speed.py", description=__doc__.split("\n")[0])
    add_flag(p, "--cfg", default="yolov3")
    add_flag(p, "--size", default=(416, 416), default_text="416")
    add_flag(p, "--rounds", default=5)
    add_flag(p, "--runs", default=3)
    add_flag(p, "--threads", default=physical_cores())
    add_flag(p, "--calib", default=str(DARKNET_IMAGES))
    add_flag(p, "--output", default="docs/benchmarks/quantize", metavar="DIR", help="folder for the results")
    return p

def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.size[0] != args.size[1]:
        p.error(f"argument --size: {args.size[0]}x{args.size[1]}: the benchmark sizes are square, give N")
    args.size = args.size[0]
    logging.basicConfig(level=logging.WARNING)
    import onnxruntime as ort

    from yolov3_trt.calibration import load_calibration_images, sample_images
    from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.fileio import atomic_write_json
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.names import default_names
    from yolov3_trt.quantize.int8_cpu import quantize_cpu
    from yolov3_trt.quantize.model_io import load_source, prepare
    from yolov3_trt.runtime.backends.ort_backend import session_options

    size = (args.size, args.size)
    with tempfile.TemporaryDirectory(prefix="yolov3_trt-int8speed-") as tmp:
        tmp = Path(tmp)
        model = YoloV3.from_cfg(args.cfg).eval()
        write_darknet_weights(tmp / "w.weights", model.network,
                              random_darknet_weights(model.network, 0, head_gain=0.1, objectness_bias=-6.0))
        model.load_darknet_weights(tmp / "w.weights")
        fp32 = tmp / "fp32.onnx"
        export_onnx(model, fp32, default_names(model.num_classes), size=size)
        source = load_source(fp32)
        images = load_calibration_images(sample_images(args.calib, 2), size, progress=False)
        prepared = prepare(source, tmp)
        files = {"FP32": fp32}
        for i, (name, options) in enumerate(VARIANTS.items()):
            files[name] = tmp / f"v{i}.onnx"
            quantize_cpu(prepared, files[name], source.input_name, images, "max", **options)
        if importlib.util.find_spec("modelopt") is not None:
            from yolov3_trt.quantize import quantize_int8
            files["ModelOpt TensorRT placement"] = quantize_int8(fp32, tmp / "trt.onnx", args.calib, target="tensorrt",
                                                                 method="max", num_images=2, progress=False)
        x = images[:1]
        sessions = {k: ort.InferenceSession(str(v), session_options(args.threads), providers=["CPUExecutionProvider"])
                    for k, v in files.items()}
        times = {k: [] for k in files}
        for s in sessions.values():
            s.run(None, {"images": x})
        for _ in range(args.rounds):
            for name, s in sessions.items():
                for _ in range(args.runs):
                    began = time.perf_counter()
                    s.run(None, {"images": x})
                    times[name].append((time.perf_counter() - began) * 1e3)
    best_fp32, p50_fp32 = min(times["FP32"]), float(np.median(times["FP32"]))
    rows = [{"file": k, "best_ms": min(v), "p50_ms": float(np.median(v)), "speedup_best": best_fp32 / min(v),
             "speedup_p50": p50_fp32 / float(np.median(v))} for k, v in times.items()]
    print(f"{args.cfg} {args.size}, inference only, {args.threads} threads, {args.rounds}x{args.runs} runs each")
    print(f"{'file':<40} {'best ms':>8} {'p50 ms':>8} {'x FP32 (best)':>14} {'x FP32 (p50)':>13}")
    for r in rows:
        print(f"{r['file']:<40} {r['best_ms']:8.1f} {r['p50_ms']:8.1f} "
              f"{r['speedup_best']:14.2f} {r['speedup_p50']:13.2f}")
    command = "python benchmarks/" + " ".join([Path(__file__).name, *(argv or sys.argv[1:])])
    atomic_write_json(Path(args.output) / "int8_cpu_speed.json",
                      {"command": command, "machine": machine_info(), "cfg": args.cfg, "size": args.size,
                       "threads": args.threads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
