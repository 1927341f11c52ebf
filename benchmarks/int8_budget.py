"""INT8 within an AP50 budget, measured: ``python benchmarks/int8_budget.py``.

Two runs of ``python -m yolov3_trt.quantize --int8 --max-ap-drop`` (TensorRT placement: the
layers kept out of INT8 stay in FP16), each one command line printed and rerunnable on its own:

1. ``shapes``: the yolov3-tiny trained on the generated shapes set by
   ``benchmarks/train_synthetic.py`` (192 px), exported to FP32 ONNX, calibrated on images of its
   training split; ``--val`` is the run's held-out split (it chooses k) and ``--holdout`` a second
   generated set of other images (seed 1) on which the chosen file's drop is measured again.
2. ``darknet``: Darknet's real yolov3-tiny weights at 416, calibrated on Darknet's six photos,
   ``--val`` the same photos without labels: AP50 then measures agreement with the FP32 model's
   own detections above 0.25 (six photos leave nothing to hold out).

Writes each report (``<name>.budget.json``, ``.budget.png``) and ``int8_budget.json`` (the
commands, the machine, a summary row per run, and the checks of issue 16 on the shapes model:
plain INT8 misses the budget, k > 0 layers in FP16 meet it, and the drop fits on the held-out
set; exit 1 when one fails) to --output; the INT8 ONNX files stay in --work.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DARKNET = ROOT.parent / "shared" / "darknet"


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/int8_budget.py", description=__doc__.split("\n")[0])
    p.add_argument("--run", default="runs/train_synthetic", metavar="DIR",
                   help="benchmarks/train_synthetic.py's --output (its run/best.pt and data/)")
    p.add_argument("--darknet", default=str(DARKNET), metavar="DIR",
                   help="Darknet's files (weights/yolov3-tiny.weights, images/)")
    add_flag(p, "--max-ap-drop", default=0.1, default_text="0.1")
    p.add_argument("--holdout-images", type=int, default=200, metavar="N",
                   help="images of the generated held-out set (seed 1)")
    add_flag(p, "--calib-images", default=128)
    p.add_argument("--only", choices=("shapes", "darknet"), help="one of the two runs (default: both)")
    p.add_argument("--work", default="runs/int8_budget", metavar="DIR",
                   help="folder for the ONNX files and the held-out set")
    add_flag(p, "--output", default="docs/benchmarks/int8_budget", metavar="DIR", help="folder for the results")
    return p


def _quantize(argv: list[str]) -> dict:
    """``python -m yolov3_trt.quantize ARGV`` in this process; its report."""
    from yolov3_trt.cli.common import run
    from yolov3_trt.quantize.__main__ import main as quantize_main
    from yolov3_trt.quantize.budget import report_paths

    print("+ python -m yolov3_trt.quantize " + " ".join(argv), flush=True)
    status = run(quantize_main, argv)
    if status:
        raise SystemExit(status)
    output = Path(argv[argv.index("--output") + 1])
    return json.loads(report_paths(output)[0].read_text())


def _summary(name: str, report: dict) -> dict:
    chosen, held, speed = report["chosen"], report["holdout"], report["speed"]
    k0 = next(s for s in report["steps"] if s["k"] == 0)
    row = {"run": name, "val": report["val"]["path"], "val_images": report["val"]["images"],
           "mode": report["val"]["mode"], "budget": report["budget"], "fp32_ap50": report["fp32_ap50"],
           "k0_drop": k0["drop"], "k": chosen["k"], "layers": chosen["layers"], "drop": chosen["drop"],
           "steps": {s["k"]: s["drop"] for s in report["steps"]},
           "holdout": None if held is None else {key: held[key] for key in ("path", "images", "fp32_ap50", "drop")},
           "cpu_ms": {runtime: speed[runtime] for runtime in ("onnxruntime", "openvino") if speed.get(runtime)}}
    return row


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from yolov3_trt.cli.common import run
    from yolov3_trt.data.synthetic import generate
    from yolov3_trt.export.__main__ import main as export_main
    from yolov3_trt.fileio import atomic_write_json
    from yolov3_trt.quantize.budget import report_paths

    work, out = Path(args.work), Path(args.output)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    commands, rows = {}, []
    budget = f"{args.max_ap_drop:g}"
    if args.only in (None, "shapes"):
        data = Path(args.run) / "data"
        checkpoint = Path(args.run) / "run" / "best.pt"
        if not checkpoint.is_file():
            print(f"error: {checkpoint}: no such checkpoint; run python benchmarks/train_synthetic.py --output "
                  f"{args.run} first", file=sys.stderr)
            return 2
        fp32 = work / "shapes.onnx"
        if run(export_main, ["--checkpoint", str(checkpoint), "--size", "192", "--output", str(fp32), "--force"]):
            return 1
        holdout = work / "holdout"
        generate(holdout, args.holdout_images, size=192, seed=1, overwrite=True)
        dst = work / "shapes-int8-trt-budget.onnx"
        argv_shapes = [str(fp32), "--int8", "--target", "tensorrt", "--calib", str(data / "train.txt"),
                       "--calib-images", str(args.calib_images), "--max-ap-drop", budget, "--val",
                       str(data / "val.txt"), "--holdout", str(holdout), "--output", str(dst), "--force"]
        commands["shapes"] = "python -m yolov3_trt.quantize " + " ".join(argv_shapes)
        rows.append(_summary("shapes", _quantize(argv_shapes)))
        for path in report_paths(dst):
            shutil.copyfile(path, out / path.name)
    if args.only in (None, "darknet"):
        darknet = Path(args.darknet)
        weights = darknet / "weights" / "yolov3-tiny.weights"
        fp32 = work / "yolov3-tiny.onnx"
        if run(export_main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--output", str(fp32), "--force"]):
            return 1
        dst = work / "yolov3-tiny-darknet-photos.onnx"
        argv_darknet = [str(fp32), "--int8", "--target", "tensorrt", "--calib", str(darknet / "images"),
                        "--calib-images", "6", "--max-ap-drop", budget, "--val", str(darknet / "images"),
                        "--output", str(dst), "--force"]
        commands["darknet"] = "python -m yolov3_trt.quantize " + " ".join(argv_darknet)
        rows.append(_summary("darknet", _quantize(argv_darknet)))
        for path in report_paths(dst):
            shutil.copyfile(path, out / path.name)
    checks = {}
    for row in rows:
        if row["run"] == "shapes":  # the test on the trained model: plain INT8 misses, k > 0 fits, held out
            checks["shapes: plain INT8 misses the budget"] = row["k0_drop"] > row["budget"]
            checks["shapes: met with k > 0 layers in FP16"] = row["k"] > 0 and row["drop"] <= row["budget"]
            checks["shapes: the drop fits on the held-out set"] = row["holdout"]["drop"] <= row["budget"]
    result = {"command": "python benchmarks/int8_budget.py " + " ".join(argv or sys.argv[1:]),
              "commands": commands, "machine": machine_info(), "rows": rows, "checks": checks}
    atomic_write_json(out / "int8_budget.json", result)
    for row in rows:
        held = row["holdout"]
        print(f"{row['run']}: FP32 AP50 {row['fp32_ap50']:.2f} ({row['mode']}), plain INT8 drop {row['k0_drop']:.2f}; "
              f"budget {row['budget']:g}: k = {row['k']} (layers {row['layers']}), drop {row['drop']:.2f}"
              + (f", held out {held['drop']:.2f} on {held['images']} images" if held else ""))
    for name, passed in checks.items():
        print(f"{name}: {'pass' if passed else 'FAIL'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
