"""Several ONNX files of one model side by side, each on its CPU runtime: accuracy, and per-layer error.

``python -m yolov3_trt.evaluate DATA --compare fp32.onnx fp32.onnx@openvino-bf16 int8-cpu.onnx
int8-trt.onnx int8-trt.onnx@openvino [--calib PATH]`` runs each file with the same Detector
settings over DATA (COCO mAP, AP50, the paper's global AP). An item is ``PATH`` (ONNX Runtime) or
``PATH@RUNTIME`` with a runtime of :data:`RUNTIMES` (OpenVINO in FP32 or BF16 inference), so the
same file can be measured on each runtime that may serve it. ``--resize-kernel opencv`` runs every
item with OpenCV's resize instead of Darknet's (labels say so), to measure what the faster
kernel costs in AP against a run without it. With ``--calib``, the per-layer
output error of every converted file against the FP32 one on the calibration images
(:mod:`.layer_error`, computed with ONNX Runtime, so given once per file). Writes
``compare.json``, ``compare.md`` (the table) and ``compare.png`` (AP bars and layer errors).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FileError, UsageError, YoloV3TrtError
from .metrics import Evaluation, coco_metrics
from .runner import run_detector

logger = logging.getLogger(__name__)
COLUMNS = (("map", "mAP@[.5:.95]"), ("ap50", "AP50"), ("global_ap50", "global AP50"), ("global_ap", "global AP"))
DEFAULT_RUNTIME = "onnxruntime"
# --compare's runtimes: name -> (Detector backend, its backend_options). All run on the CPU.
RUNTIMES: dict[str, tuple[str, dict[str, str]]] = {
    "onnxruntime": ("onnxruntime", {}),
    "openvino": ("openvino", {"precision": "f32"}),
    "openvino-bf16": ("openvino", {"precision": "bf16"}),
}


def parse_item(text: str) -> tuple[str, str]:
    """``"int8.onnx@openvino"`` -> ("int8.onnx", "openvino"); a plain path runs on ONNX Runtime.

    An existing file whose name has an ``@`` is that file; otherwise the text after the last ``@``
    must be one of :data:`RUNTIMES` (UsageError naming the item).
    """
    path, at, runtime = text.rpartition("@")
    if not at or Path(text).is_file():
        return text, DEFAULT_RUNTIME
    if runtime not in RUNTIMES:
        raise UsageError(f"--compare {text}: unknown runtime {runtime!r} after @ (choose from "
                         f"{', '.join(RUNTIMES)})")
    return path, runtime


def item_label(path: str | os.PathLike, runtime: str) -> str:
    """The file's :func:`model_label`, with `` on <runtime>`` unless it runs on ONNX Runtime."""
    label = model_label(path)
    return label if runtime == DEFAULT_RUNTIME else f"{label} on {runtime}"


def model_label(path: str | os.PathLike) -> str:
    """"FP32", "FP16", "INT8 cpu percentile", "INT8 tensorrt entropy" from the file's metadata."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others for non-ONNX bytes (.pt, .engine)
        raise FileError(path, f"not a readable ONNX file ({type(err).__name__}); --compare takes ONNX files") from None
    props = {p.key: p.value for p in model.metadata_props}
    precision = props.get("yolov3_trt.precision", "fp32").upper()
    if precision != "INT8":
        return precision
    try:
        method = json.loads(props.get("yolov3_trt.calibration", "{}")).get("method", "")
    except (ValueError, AttributeError):
        method = ""
    return " ".join(p for p in (precision, props.get("yolov3_trt.quantize_target", ""), method) if p)


def evaluate_models(items: Sequence[str | os.PathLike | tuple[str, str]], samples: Sequence, num_classes: int, *,
                    conf: float, iou: float | None, max_det: int, batch: int = 8,
                    threads: int | None = None, resize_kernel: str = "darknet") -> list[dict[str, Any]]:
    """COCO and global AP of each file on ``samples``, run by a Detector on the CPU. An item is a
    path (ONNX Runtime) or ``(path, runtime)`` with a runtime of :data:`RUNTIMES`. ``resize_kernel``:
    the Detectors' (labels gain `` (opencv resize)`` when not Darknet's)."""
    from ..runtime.detector import Detector

    pairs = [item if isinstance(item, tuple) else (os.fspath(item), DEFAULT_RUNTIME) for item in items]
    results = []
    labels: dict[str, int] = {}
    suffix = "" if resize_kernel == "darknet" else f" ({resize_kernel} resize)"
    # every file read before the first evaluation
    plain = [item_label(path, runtime) + suffix for path, runtime in pairs]
    for (path, runtime), label in zip(pairs, plain):
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:
            label = f"{label} ({Path(path).name})"
        backend, options = RUNTIMES[runtime]
        with Detector(path, backend, conf=conf, iou=iou, max_det=max_det, device="cpu", threads=threads,
                      backend_options=options or None, resize_kernel=resize_kernel) as detector:
            if len(detector.names) != num_classes:
                raise YoloV3TrtError(f"{path}: the model has {len(detector.names)} classes, the dataset {num_classes}")
            ground_truth, predictions, sizes, seconds = run_detector(detector, samples, batch)
            described = detector.backend
        coco = coco_metrics(ground_truth, predictions, sizes, num_classes)
        coco.pop("per_class")
        metrics = {**coco, **Evaluation(ground_truth, predictions).global_ap()}
        results.append({"label": label, "path": str(path), "runtime": runtime, "backend": described,
                        "resize_kernel": str(resize_kernel),
                        "metrics": metrics, "images_per_second": len(sizes) / seconds if seconds else None})
    return results


def table(results: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one row per model, AP columns and the AP50 difference to the first row."""
    head = "| model | " + " | ".join(name for _, name in COLUMNS) + " | ΔAP50 vs first | images/s |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 3)]
    base = results[0]["metrics"]["ap50"] if results else float("nan")
    for r in results:
        m = r["metrics"]
        cells = [f"{100 * m[k]:.2f}" if m[k] is not None and not np.isnan(m[k]) else "n/a" for k, _ in COLUMNS]
        delta = 100 * (m["ap50"] - base)
        ips = f"{r['images_per_second']:.1f}" if r["images_per_second"] else "-"
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {delta:+.2f} | {ips} |")
    return "\n".join(lines)


def plot_comparison(results: Sequence[dict[str, Any]], errors: dict[str, list[dict[str, Any]]] | None,
                    path: str | os.PathLike, title: str = "", dpi: int = 120) -> Path:
    """AP bars per model (left) and, if given, per-layer error lines (right), as one PNG (atomic)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..fileio import atomic_path

    figure = Figure(figsize=(13 if errors else 7, 5.6), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 2 if errors else 1, 1)
    width = 0.8 / len(COLUMNS)
    x = np.arange(len(results))
    for j, (key, name) in enumerate(COLUMNS):
        values = [100 * (r["metrics"][key] or 0.0) for r in results]
        bars = axes.bar(x + (j - (len(COLUMNS) - 1) / 2) * width, values, width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    # labels slanted, so that long ones ("INT8 tensorrt entropy on openvino") never overlap
    axes.set_xticks(x, [r["label"] for r in results], fontsize=7, rotation=25, ha="right")
    axes.set_ylabel("AP (%)")
    axes.set_ylim(0, 118)  # room above the bars for the legend, which then covers none
    axes.legend(loc="upper center", fontsize="small", ncol=len(COLUMNS), frameon=False)
    axes.set_title(title or "accuracy on the CPU", fontsize=9)
    if errors:
        right = figure.add_subplot(1, 2, 2)
        for label, rows in errors.items():
            points = sorted((r["layer"] if r["layer"] is not None else i, r["rel_error"]) for i, r in enumerate(rows)
                            if r["rel_error"])  # by layer: the graph lists the second head's convs late
            if points:
                right.plot(*zip(*points), marker="o", markersize=3, label=label)
        right.set_yscale("log")
        right.set_xlabel("Darknet layer (Conv outputs)")
        right.set_ylabel("relative RMS error vs FP32")
        right.grid(True, which="both", alpha=0.3)
        right.legend(loc="best", fontsize="small")
        right.set_title("per-layer error on the calibration images", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def format_layer_table(errors: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: one row per Conv layer, relative error (%) per converted model."""
    labels = list(errors)
    if not labels:
        return ""
    lines = ["| layer | " + " | ".join(f"{label} rel. error %" for label in labels) + " |",
             "|" + " --- |" * (len(labels) + 1)]
    for i, row in enumerate(errors[labels[0]]):
        cells = []
        for label in labels:
            rel = errors[label][i]["rel_error"]
            cells.append(f"{100 * rel:.2f}" if rel is not None else "n/a")
        lines.append(f"| {row['layer'] if row['layer'] is not None else row['tensor']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dumps(report: dict[str, Any]) -> str:
    """JSON with NaN written as null."""
    def clean(value):
        if isinstance(value, float) and np.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(report), indent=2) + "\n"
