"""FP32 / FP16 / INT8 accuracy of one trained model on ONNX Runtime: ``python benchmarks/quantize_accuracy.py``.

Exports the checkpoint trained by ``benchmarks/train_synthetic.py`` (yolov3-tiny, 192 px, on the
generated shapes set) to FP32 ONNX, converts it to FP16 and to both INT8 placements (ONNX
Runtime CPU and TensorRT/ModelOpt), calibrated on images sampled from the *training* split,
then evaluates all four side by side on the *held-out* split with
``python -m yolov3_trt.evaluate --compare`` (per-layer error on the calibration images included).
With OpenVINO installed (and unless ``--no-openvino``) the same files also run on OpenVINO, as
``evaluate --compare FILE@openvino`` rows: FP32 in BF16 inference (``@openvino-bf16``), the CPU
INT8 file and the TensorRT INT8 file. Writes compare.json / compare.md / compare.png and
quantize_accuracy.json (with the machine and the pass/fail of the targets: INT8 within 1.0 AP50
point of FP32, FP16 and BF16 within 0.2) to --output.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "docs" / "benchmarks" / "train_synthetic"
TARGETS = {"FP16": 0.2, "FP32 on openvino-bf16": 0.2, "INT8 cpu": 1.0, "INT8 tensorrt": 1.0}  # max AP50 drop, points


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/quantize_accuracy.py", description=__doc__.split("\n")[0])
    add_flag(p, "--checkpoint", default=str(RUN / "run" / "best.pt"))
    add_flag(p, "--train", default=str(RUN / "data" / "train.txt"))
    add_flag(p, "--val", default=str(RUN / "data" / "val.txt"))
    add_flag(p, "--size", default=(192, 192), default_text="192, the size the model was trained and validated at")
    add_flag(p, "--calib-images", default=128)
    add_flag(p, "--calib-method", default="entropy")
    add_flag(p, "--cpu-methods", default=["percentile", "max"], default_text="percentile,max; ONNX Runtime's "
             "entropy equals max, see yolov3_trt/quantize/int8_cpu.py")
    add_flag(p, "--layer-images", default=32)
    add_flag(p, "--output", default="docs/benchmarks/quantize", metavar="DIR", help="folder for the results")
    add_flag(p, "--no-openvino")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    args.size = "x".join(map(str, args.size))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from yolov3_trt.evaluate.__main__ import main as evaluate_main
    from yolov3_trt.export.__main__ import main as export_main
    from yolov3_trt.fileio import atomic_write_json
    from yolov3_trt.quantize import quantize_fp16, quantize_int8

    out = Path(args.output)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="yolov3_trt-qacc-") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        export_main(["--checkpoint", args.checkpoint, "--size", args.size, "--output", str(fp32)])
        began = time.perf_counter()
        quantize_fp16(fp32, tmp / "fp16.onnx")
        seconds["fp16"] = time.perf_counter() - began
        jobs = [("cpu", m) for m in args.cpu_methods] + [("tensorrt", args.calib_method)]
        files = []
        for target, method in jobs:
            began = time.perf_counter()
            files.append(quantize_int8(fp32, tmp / f"int8-{target}-{method}.onnx", args.train, target=target,
                                       method=method, num_images=args.calib_images, seed=0))
            seconds[files[-1].stem] = time.perf_counter() - began
        compared = [str(fp32), str(tmp / "fp16.onnx"), *map(str, files)]
        if not args.no_openvino and importlib.util.find_spec("openvino") is not None:
            compared += [f"{fp32}@openvino-bf16", f"{files[0]}@openvino", f"{files[-1]}@openvino"]
        evaluate_main([args.val, "--compare", *compared,
                       "--calib", args.train, "--calib-images",
                       str(args.layer_images), "--output", str(out), "--force"])  # this script's own results
    report = json.loads((out / "compare.json").read_text())
    fp32_ap50 = report["models"][0]["metrics"]["ap50"]
    checks = {}
    for model in report["models"][1:]:
        drop = 100 * (fp32_ap50 - model["metrics"]["ap50"])
        limit = next((v for k, v in TARGETS.items() if model["label"].startswith(k)), None)
        checks[model["label"]] = {"ap50_drop_points": drop, "limit_points": limit,
                                  "pass": None if limit is None else drop <= limit}
    summary = {"command": "python benchmarks/" + " ".join([Path(__file__).name, *(argv or sys.argv[1:])]),
               "machine": machine_info(), "checkpoint": args.checkpoint, "calibration": {
                   "from": args.train, "images": args.calib_images, "seed": 0,
                   "methods": [f"{t} {m}" for t, m in jobs]},
               "evaluated_on": args.val, "quantize_seconds": seconds, "checks": checks}
    atomic_write_json(out / "quantize_accuracy.json", summary)
    for label, check in checks.items():
        print(f"{label}: AP50 {check['ap50_drop_points']:+.2f} points below FP32 (limit {check['limit_points']}): "
              f"{'pass' if check['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
