"""``python -m yolov3_trt.evaluate``: accuracy of a model on a labelled set.

Runs the model over every image of DATA (a YOLO-format folder or list file, or a COCO JSON),
then reports COCO mAP through pycocotools and the YOLOv3 paper's proposed global AP and
per-image AP (definitions in ``yolov3_trt/evaluate/metrics.py``). Writes the metrics as JSON and
a precision/recall plot to --output.
"""
from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cli.args import ModelArgs, PostprocessArgs, RuntimeArgs
from ..cli.common import UsageError, make_parser, run
from ..cli.flags import add_flag
from ..cli.outputs import (
    StagedFiles,
    add_force_arg,
    check_output_file,
    check_output_folder,
    dataset_inputs,
    existing_inputs,
    model_inputs,
)
from ..errors import YoloV3TrtError
from ..fileio import atomic_write_json
from .metrics import Evaluation, coco_metrics
from .plots import plot_pr_curves
from .runner import EVAL_CONF, EVAL_MAX_DET, run_detector

logger = logging.getLogger(__name__)
DEFAULT_CONF, DEFAULT_MAX_DET = EVAL_CONF, EVAL_MAX_DET  # evaluate/runner.py: the AP thresholds
TABLE = (("map", "mAP@[.50:.95]"), ("ap50", "AP50"), ("ap75", "AP75"), ("ap_small", "APs"),
         ("ap_medium", "APm"), ("ap_large", "APl"), ("ar100", "AR@100"), ("global_ap50", "global AP50"),
         ("global_ap", "global AP@[.50:.95]"), ("per_image_ap50", "per-image AP50"),
         ("per_image_ap", "per-image AP@[.50:.95]"))


GROUPS = (ModelArgs(), RuntimeArgs(resize_kernel=True), PostprocessArgs(DEFAULT_CONF, None, DEFAULT_MAX_DET))


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("python -m yolov3_trt.evaluate", "accuracy of a model on a labelled set: COCO mAP "
                         "(pycocotools) and the YOLOv3 paper's global and per-image AP")
    parser.add_argument("data", nargs="?", metavar="DATA",
                        help="labelled set: YOLO-format folder or list file, or COCO JSON (or --data)")
    for group in GROUPS:
        group.add_parser_args(parser)
    g = parser.add_argument_group("data and output")
    add_flag(g, "--data", dest="data_flag", default_text="DATA")
    add_flag(g, "--data-names", default_text="the names file beside it, or COCO's categories")
    add_flag(g, "--infer-batch", default=8)
    add_flag(g, "--limit", default_text="all")
    add_flag(g, "--output", default="runs/evaluate", metavar="DIR", help="folder for metrics.json and pr_curve.png")
    add_flag(g, "--json", metavar="PATH", help="metrics JSON", default_text="OUTPUT/metrics.json")
    add_force_arg(g, help="replace the metrics, plot or --compare files of an earlier run (never an input)")
    add_flag(g, "--plot-classes", default=5)
    c = parser.add_argument_group("comparing precisions (FP32 / FP16 / INT8 files of one export); --calib: the "
                                  "per-layer output error of each file against the first, on images sampled from "
                                  "it as calibration samples them")
    add_flag(c, "--compare", nargs="+")
    add_flag(c, "--calib")
    add_flag(c, "--calib-images", default=32)
    add_flag(c, "--calib-seed", default=0)
    return parser


def _data_path(args: argparse.Namespace) -> str:
    if args.data and args.data_flag and args.data != args.data_flag:
        raise UsageError(f"two datasets given: DATA {args.data} and --data {args.data_flag}")
    data = args.data or args.data_flag
    if not data:
        raise UsageError("no dataset: give DATA (YOLO-format folder or list file, or COCO JSON)")
    return data


def _load(args: argparse.Namespace, data: str):
    """The dataset and its first --limit samples."""
    from ..data.dataset import load_dataset

    dataset = load_dataset(data, names=args.data_names)
    if not dataset.samples:
        raise YoloV3TrtError(f"{data}: no images in the dataset")
    return dataset, dataset.samples[:args.limit] if args.limit else list(dataset.samples)


def _check_classes(data: str, dataset_names: Sequence[str], model_names: Sequence[str], model: str) -> None:
    if len(dataset_names) != len(model_names):
        raise YoloV3TrtError(f"{data}: the dataset has {len(dataset_names)} classes but the model {model} has "
                             f"{len(model_names)}; check the dataset's names file, or give --data-names")
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(dataset_names, model_names)) if a != b]
    if differ:
        i, a, b = differ[0]
        logger.warning("%d class names differ between dataset and model (class %d: %r vs %r); "
                       "comparing by class id", len(differ), i, a, b)


def _json_safe(value: Any) -> Any:
    """NaN (a metric without ground truth) -> None, recursively, so the JSON stays standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _format(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _model_description(args: argparse.Namespace, detector) -> dict[str, Any]:
    source = args.model or args.checkpoint or f"{args.cfg or 'yolov3'} + {args.weights}"
    return {"path": str(source), "backend": detector.backend, "input_size": list(detector.input_size),
            "num_classes": len(detector.names), "conf": detector.conf, "iou": detector.iou,
            "max_det": detector.max_det, "resize_kernel": str(detector.resize_kernel)}


COMPARE_FILES = ("compare.json", "compare.md", "compare.png")


def _check_outputs(args: argparse.Namespace, data: str) -> tuple[Path, ...]:
    """The files this run writes, each checked before any work: (metrics JSON, PR plot), or the
    three --compare files. OutputError for a path that is an input, the wrong kind, unwritable,
    or an earlier output without --force."""
    output = Path(args.output)
    files, folders = dataset_inputs(data, args.data_names)
    from .compare import parse_item

    compared = [parse_item(text)[0] for text in args.compare or ()]
    inputs = files + model_inputs(args) + existing_inputs(args.calib, *compared)
    if args.compare:
        if args.json:
            raise UsageError("--json is the metrics file of a single model; --compare writes OUTPUT/compare.json")
        paths = tuple(output / name for name in COMPARE_FILES)
    else:
        paths = (Path(args.json) if args.json else output / "metrics.json", output / "pr_curve.png")
    check_output_folder(output, inputs=inputs)
    for path in paths:
        option = "--json" if args.json and path == Path(args.json) else "--output"
        check_output_file(path, inputs=inputs, force=args.force, option=option, input_folders=folders)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..cli.models import detector_for

    model_options = GROUPS[0].parse(args)
    data = _data_path(args)
    if args.calib and not args.compare:
        raise UsageError("--calib is used only with --compare (per-layer error against the first model)")
    paths = _check_outputs(args, data)
    dataset, samples = _load(args, data)
    if args.compare:
        return _compare(args, data, dataset, samples, argv, paths)
    runtime = GROUPS[1].parse(args, model_options)  # after the output checks, as the model loads
    detector, _ = detector_for(model_options, runtime, GROUPS[2].parse(args))
    with detector:
        model = _model_description(args, detector)
        _check_classes(data, dataset.names, detector.names, model["path"])
        ground_truth, predictions, sizes, seconds = run_detector(detector, samples, args.infer_batch)
    counts = np.bincount(np.concatenate([c for _, c in ground_truth]).astype(np.int64),
                         minlength=len(dataset.names))
    if not counts.sum():
        raise YoloV3TrtError(f"{data}: no labelled boxes in the {len(sizes)} images evaluated")
    coco = coco_metrics(ground_truth, predictions, sizes, len(dataset.names))
    evaluation = Evaluation(ground_truth, predictions)
    per_class = [{"name": name, "boxes": int(n), "ap": c["ap"], "ap50": c["ap50"]}
                 for name, n, c in zip(dataset.names, counts, coco.pop("per_class"))]
    metrics = {**coco, **evaluation.global_ap(), **evaluation.per_image_ap()}

    json_path, plot_path = paths
    shown = [int(k) for k in np.argsort(-counts, kind="stable")[:max(args.plot_classes, 0)] if counts[k]]
    curves = [evaluation.pr_curve(None, label="all classes (global)")]
    curves += [evaluation.pr_curve(k, label=dataset.names[k]) for k in shown]
    command = "python -m yolov3_trt.evaluate " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    report = {"metrics": metrics, "per_class": per_class, "model": model,
              "dataset": {"path": str(data), "source": dataset.source, "images": len(sizes),
                          "boxes": int(counts.sum()), "names": list(dataset.names)},
              "timing": {"detect_seconds": seconds, "images_per_second": len(sizes) / seconds if seconds else None},
              "command": command, "pr_curve": str(plot_path)}
    with StagedFiles(paths) as staged:  # the plot and the JSON appear together, or neither
        plot_pr_curves(curves, staged[plot_path], title=f"{Path(model['path']).name} on {Path(data).name} (IoU 0.5)")
        atomic_write_json(staged[json_path], _json_safe(report))

    print(f"{len(sizes)} images, {int(counts.sum())} boxes, {len(dataset.names)} classes; "
          f"{model['backend']}, {model['resize_kernel']} resize, conf {detector.conf}, iou {detector.iou}, "
          f"max-det {detector.max_det}")
    for key, label in TABLE:
        print(f"  {label:<24} {_format(metrics[key])}")
    print(f"  per-image AP over {metrics['per_image_images']} images "
          f"({metrics['per_image_excluded']} without labels left out)")
    print(f"metrics in {json_path}, precision/recall curves in {plot_path}")
    return 0


def _compare(args: argparse.Namespace, data: str, dataset, samples, argv, paths: tuple[Path, ...]) -> int:
    """--compare: the ONNX files side by side, and per-layer error with --calib."""
    from ..fileio import atomic_write_text
    from .compare import dumps, evaluate_models, format_layer_table, model_label, parse_item, plot_comparison, table

    clash = [flag for flag, value in (("--model", args.model), ("--cfg", args.cfg), ("--weights", args.weights),
                                      ("--checkpoint", args.checkpoint)) if value]
    if clash:
        raise UsageError(f"--compare takes the models itself: drop {', '.join(clash)}")
    if args.backend not in ("auto", "onnxruntime"):  # ONNX Runtime: the plain FILE's runtime
        raise UsageError("--compare takes a runtime per file (FILE@openvino, FILE@openvino-bf16; plain FILE: "
                         "ONNX Runtime); drop --backend")
    items = [parse_item(text) for text in args.compare]
    for path, _ in items:
        if not Path(path).is_file():
            raise YoloV3TrtError(f"{path}: no such model file")
    first = items[0][0]
    if args.calib and model_label(first) != "FP32":  # load_source below would say "quantize the FP32 export"
        raise UsageError(f"--calib measures per-layer error against the first --compare file, which must be the "
                         f"FP32 export; {first} is {model_label(first)}")
    results = evaluate_models(items, samples, len(dataset.names), conf=args.conf, iou=args.iou,
                              max_det=args.max_det, batch=args.infer_batch, resize_kernel=args.resize_kernel)
    errors = None
    if args.calib:
        from ..calibration import load_calibration_images, sample_images
        from ..quantize.model_io import load_source
        from .layer_error import layer_errors

        reference = load_source(first)
        images = load_calibration_images(sample_images(args.calib, args.calib_images, args.calib_seed),
                                         reference.size, reference.metadata.resize)
        # ONNX Runtime computes every layer error: one entry per file, not per runtime
        others = {r["label"]: r["path"] for r in results[1:] if r["path"] != first and r["runtime"] == "onnxruntime"}
        errors = layer_errors(first, others, images)
    command = "python -m yolov3_trt.evaluate " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    report = {"models": results, "reference": results[0]["label"], "layer_errors": errors,
              "dataset": {"path": str(data), "images": len(samples), "names": list(dataset.names)},
              "settings": {"conf": args.conf, "iou": args.iou, "max_det": args.max_det,
                           "resize_kernel": args.resize_kernel,
                           "calib": args.calib, "calib_images": args.calib_images if args.calib else None},
              "command": command}
    text = table(results)
    if errors:
        text += "\n\nPer-layer relative RMS error against " + results[0]["label"] + ":\n\n" + format_layer_table(errors)
    json_path, md_path, png_path = paths
    with StagedFiles(paths) as staged:
        atomic_write_text(staged[json_path], dumps(report))
        atomic_write_text(staged[md_path], text + "\n")
        plot_comparison(results, errors, staged[png_path], title=f"{len(samples)} images of {Path(data).name}")
    print(table(results))
    if errors:
        for label, rows in errors.items():
            worst = max((r for r in rows if r["rel_error"] is not None), key=lambda r: r["rel_error"], default=None)
            if worst:
                print(f"{label}: largest layer error {100 * worst['rel_error']:.2f}% at layer {worst['layer']}")
    print(f"wrote {json_path}, {md_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
