"""INT8 with an accuracy budget: the fewest Conv layers kept in higher precision for an AP50 drop that fits.

:func:`quantize_int8_budget` calibrates INT8 as :func:`~yolov3_trt.quantize.quantize_int8` does,
then measures COCO AP50 of the FP32 source and of the INT8 file on a validation set
(a Detector on ONNX Runtime's CPU provider, as ``evaluate --compare`` does). If the drop, in AP50
points, is within ``max_ap_drop``, that file is the result (k = 0). Otherwise:

1. Rank. Each quantized Conv's output is compared with the FP32 one on the calibration images
   (relative RMS error, :func:`yolov3_trt.evaluate.layer_error.layer_errors`: one ONNX Runtime
   pass per file, far cheaper than an AP per layer). Largest error first; ties by graph order.
2. Search. Quantize again with the k worst layers left out of quantization (``nodes_to_exclude``:
   for ``tensorrt`` ModelOpt keeps them in FP16, its high-precision dtype; for ``cpu`` ONNX Runtime
   keeps the Conv and its LeakyRelu in FP32, so the layer's output is not rounded either; the
   MaxPool, Resize, Concat, ... that only feed excluded layers go with them, see
   :func:`excluded_nodes`), for k = 1, 2, 4, 8, ... (doubling, the last step the limit itself),
   until the drop fits; then bisect
   between the last k that missed and the first that fit, so the result is the smallest k the
   search saw fit (it assumes the drop shrinks as k grows, which the measured steps show).
3. Hold out. With a held-out set (``holdout``, no image of the selection set), the chosen file's
   drop is measured again there; the budget must hold on it too.
4. Fail. When no k up to the limit (every quantized Conv, or ``max_excluded``) fits, or the
   chosen k misses on the held-out set: :class:`~yolov3_trt.errors.AccuracyBudgetError`, one line
   with the best drop and its k; the report is written (``result`` says what failed), the ONNX
   is not.

An end2end or plugin graph (what ``build --int8 --max-ap-drop`` quantizes) is measured as its
raw heads with host decode + NMS (ONNX Runtime cannot run the plugin node); the file written is
the same quantization with its tail put back.

Every step is deterministic for a seed (the same calibration images, the same ranking). The
chosen file is written to ``dst`` with ``yolov3_trt.ap_budget`` in its metadata (JSON: budget,
measured drops, AP50s, excluded nodes, their Darknet layers); beside it ``<dst stem>.budget.json``
(every step, the ranking, the held-out result, the speed cost: batch-1 CPU inference ms of the
k = 0 file and of the chosen one on ONNX Runtime and OpenVINO, medians of 30 runs, the two files in alternation) and
``<dst stem>.budget.png`` (AP50 against the layers kept in higher precision, with the budget
line). All three are written atomically.
"""
from __future__ import annotations

import json
import logging
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..calibration import DEFAULT_NUM_IMAGES, load_calibration_images, sample_images
from ..errors import AccuracyBudgetError, QuantizeError
from ..evaluate.runner import EVAL_CONF, EVAL_MAX_DET
from ..fileio import atomic_path, atomic_write_text
from ..metadata import PREFIX
from ..vocab import Flavour
from .int8 import check_request, quantize_int8
from .model_io import QUANTIZE_KEYS, finish, load_source, prepare, raw_copy, restore_tail

logger = logging.getLogger(__name__)

# The Detector's thresholds for AP: evaluate's own (evaluate/runner.py), so an AP here is the AP
# python -m yolov3_trt.evaluate reports.
DEFAULT_CONF, DEFAULT_MAX_DET = EVAL_CONF, EVAL_MAX_DET
TIMING_RUNS = 30
SCHEDULE = "doubling (k = 1, 2, 4, ..., the limit), then bisection between the last miss and the first fit"
_TOLERANCE = 1e-9  # AP differences are sums of floats: a drop equal to the budget fits


def report_paths(dst: str | os.PathLike) -> tuple[Path, Path]:
    """The report JSON and picture written beside ``dst``: ``<stem>.budget.json``, ``<stem>.budget.png``."""
    dst = Path(dst)
    return dst.with_name(dst.stem + ".budget.json"), dst.with_name(dst.stem + ".budget.png")


def _quantized_convs(path: Path) -> set[str]:
    """Names of the Conv nodes of ``path`` whose weight is dequantized (the quantized ones)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    return {n.name for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 1
            and getattr(producer.get(n.input[1]), "op_type", "") == "DequantizeLinear"}


# Ops that a quantizer gives Q/DQ inputs (ModelOpt's TensorRT placement, ONNX Runtime's CPU one) and
# that only pass a layer's input on: left quantized before an excluded Conv, they would still round
# its input (``DQ -> MaxPool -> Conv``).
FEEDERS = ("Add", "Concat", "MaxPool", "Pad", "Resize")


def excluded_nodes(path: str | os.PathLike, convs: Sequence[str], target: str) -> list[str]:
    """The nodes to keep out of quantization so that the Conv layers ``convs`` of ``path`` (the
    graph the quantizers read: :func:`~yolov3_trt.quantize.model_io.prepare`'s) run in
    higher precision, in graph order: each Conv; for ``cpu`` also the LeakyRelu that alone reads
    it (ONNX Runtime quantizes LeakyRelu, TensorRT's placement does not); and every
    :data:`FEEDERS` node all of whose readers are already kept out (found until none is left), so
    no Q/DQ stands between the previous layer and an excluded Conv."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    chosen = set(convs)
    if target == "cpu":
        for node in model.graph.node:
            if node.name in convs:
                after = readers.get(node.output[0], [])
                if len(after) == 1 and after[0].op_type == "LeakyRelu":
                    chosen.add(after[0].name)
    graph_outputs = {o.name for o in model.graph.output}
    grown = True
    while grown:
        grown = False
        for node in model.graph.node:
            if node.op_type not in FEEDERS or node.name in chosen:
                continue
            after = [r for o in node.output for r in readers.get(o, [])]
            if after and all(r.name in chosen for r in after) and not graph_outputs.intersection(node.output):
                chosen.add(node.name)
                grown = True
    return [n.name for n in model.graph.node if n.name in chosen]


def _ranking(src: Path, int8: Path, images: np.ndarray) -> list[dict[str, Any]]:
    """The quantized Convs of ``int8``, largest relative output error against ``src`` first."""
    import onnx

    from ..evaluate.layer_error import layer_errors

    model = onnx.load(str(src), load_external_data=False)
    node_of = {n.output[0]: n.name for n in model.graph.node if n.op_type == "Conv"}
    quantized = _quantized_convs(int8)
    rows = layer_errors(src, {"int8": int8}, images)["int8"]
    ranked = [{"node": node_of[r["tensor"]], "layer": r["layer"], "rel_error": r["rel_error"], "order": i}
              for i, r in enumerate(rows) if node_of.get(r["tensor"]) in quantized and r["rel_error"] is not None]
    ranked.sort(key=lambda r: (-r["rel_error"], r["order"]))
    for r in ranked:
        del r["order"]
    return ranked


def _ap50(path: Path, samples: Sequence, num_classes: int, conf: float, max_det: int, batch: int) -> float:
    """COCO AP50 in percent of the file on ``samples`` (a Detector on ONNX Runtime, the CPU)."""
    from ..evaluate.compare import evaluate_models

    value = evaluate_models([path], samples, num_classes, conf=conf, iou=None, max_det=max_det,
                            batch=batch)[0]["metrics"]["ap50"]
    return 100.0 * float(value)


AGREEMENT_CONF = 0.25  # Darknet's detect threshold: the FP32 detections that label an unlabelled set


def agreement_samples(path: Path, samples: Sequence, conf: float = AGREEMENT_CONF) -> list:
    """``samples`` labelled with the FP32 model's own detections above ``conf`` (for a validation
    set without labels: AP50 then measures agreement with FP32, not accuracy)."""
    from ..boxes import box_convert
    from ..data.samples import Sample
    from ..preprocess import read_image
    from ..runtime.detector import Detector

    labelled = []
    with Detector(path, "onnxruntime", conf=conf, device="cpu") as detector:
        for sample in samples:
            image = read_image(sample.image)
            height, width = image.shape[:2]
            found = detector.detect(image)
            xyxy = np.clip(found.boxes.astype(np.float64), 0, (width, height, width, height))  # inside the image
            keep = (xyxy[:, 2] - xyxy[:, 0] >= 1) & (xyxy[:, 3] - xyxy[:, 1] >= 1)
            boxes = box_convert(xyxy[keep], "xyxy", "cxcywh") / (width, height, width, height)
            labelled.append(Sample(sample.image, boxes, found.class_ids[keep], width, height))
    return labelled


# Each speed measurement: a runner for one file, ``(call, close)``; the two files of a runtime are
# timed in alternation (interleaved), so both see the same machine state.


def _ort_runner(path: Path, x: np.ndarray):
    """ONNX Runtime's CPU provider on ``path``, one ``x`` run per call."""
    import onnxruntime as ort

    from ..runtime.backends.ort_backend import session_options

    session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    return (lambda: session.run(None, feed)), (lambda: None)


def _openvino_runner(path: Path, x: np.ndarray):
    """OpenVINO's CPU plugin on ``path`` (f32, read and compiled as the openvino backend does)."""
    import openvino as ov

    from ..runtime.backends.openvino_backend import compile_config, model_as_run

    core = ov.Core()
    compiled = core.compile_model(model_as_run(core, path), "CPU", compile_config("f32", None))
    request = compiled.create_infer_request()
    blob = np.ascontiguousarray(x, dtype=np.float32)
    return (lambda: request.infer({0: blob})), (lambda: None)


def _tensorrt_runner(path: Path, x: np.ndarray):
    """An engine built from ``path`` (batch 1, strongly typed, beside it) on the first GPU. Only
    where TensorRT and a GPU are (the caller checks); the project's machines have neither, so this
    has run only in ``tests/gpu/``."""
    from ..build.pipeline import build_engine
    from ..build.steps import BuildOptions
    from ..runtime.backends.trt_backend import TensorRTBackend

    engine = path.with_suffix(".engine")
    build_engine(path, engine, BuildOptions(batch=(1, 1, 1), progress=False))
    backend = TensorRTBackend(engine)
    blob = np.ascontiguousarray(x, dtype=np.float32)
    return (lambda: backend.infer(blob)), backend.close


def interleaved_ms(calls: Sequence, runs: int, warmup: int = 2) -> list[float]:
    """Median milliseconds of each of ``calls``, timed in alternation: ``warmup`` untimed rounds,
    then ``runs`` rounds of one call each."""
    for _ in range(warmup):
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, out in zip(calls, times):
            began = time.perf_counter()
            call()
            out.append(1000.0 * (time.perf_counter() - began))
    return [statistics.median(t) for t in times]


def speed_cost(k0: Path, chosen: Path, x: np.ndarray, runs: int, target: str = "tensorrt") -> dict[str, Any]:
    """What keeping layers in higher precision costs: batch-1 milliseconds of the all-INT8 file
    ``k0`` and of ``chosen``, timed in alternation, on ONNX Runtime and, where installed, OpenVINO
    (f32 hint), on the CPU; and for the ``tensorrt`` placement, where TensorRT and a GPU are here,
    of an engine built from each (else the reason it was not measured)."""
    import importlib.util

    from ..tensorrt.device import availability

    speed: dict[str, Any] = {"batch": 1, "runs": runs, "timing": "the two files in alternation, medians"}
    runners = {"onnxruntime": _ort_runner}
    if importlib.util.find_spec("openvino") is not None:
        runners["openvino"] = _openvino_runner
    else:
        speed["openvino"] = None
    usable, why = availability()
    if target != "tensorrt":
        speed["tensorrt"] = "not measured: the cpu placement is made for the CPU runtimes"
    elif usable:
        runners["tensorrt"] = _tensorrt_runner
    else:
        speed["tensorrt"] = f"not measured: {why}"
    for runtime, runner in runners.items():
        made = [runner(k0, x)] + ([] if chosen == k0 else [runner(chosen, x)])
        try:
            measured = interleaved_ms([call for call, _ in made], runs)
        finally:
            for _, close in made:
                close()
        k0_ms, chosen_ms = measured[0], measured[-1]
        speed[runtime] = {"k0_ms": k0_ms, "chosen_ms": chosen_ms, "slowdown": chosen_ms / k0_ms if k0_ms else None}
    if usable and target == "tensorrt":
        speed["tensorrt"]["gpu"] = why
    return speed


def plot_budget(report: dict[str, Any], path: str | os.PathLike, dpi: int = 120) -> Path:
    """AP50 against the layers kept in higher precision, FP32's AP50 and the budget line (and the
    held-out set's FP32 and chosen AP50 where there is one), as a PNG (atomic)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = sorted(report["steps"], key=lambda s: s["k"])
    figure = Figure(figsize=(7, 4.6), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    ks = [s["k"] for s in steps]
    axes.plot(ks, [s["ap50"] for s in steps], marker="o", label=f"INT8 {report['target']}, selection set")
    fp32 = report["fp32_ap50"]
    axes.axhline(fp32, color="grey", linestyle=":", label=f"FP32 {fp32:.2f}")
    axes.axhline(fp32 - report["budget"], color="red", linestyle="--",
                 label=f"budget: FP32 - {report['budget']:g} points")
    chosen = report.get("chosen")
    if chosen is not None:
        axes.plot([chosen["k"]], [chosen["ap50"]], marker="*", markersize=14, color="green", linestyle="none",
                  label=f"chosen: k = {chosen['k']}")
    holdout = report.get("holdout")
    if holdout is not None and chosen is not None:
        # the held-out AP50 shifted by the two sets' FP32 difference, so it reads against the same budget line
        shifted = fp32 - holdout["drop"]
        axes.plot([chosen["k"]], [shifted], marker="D", markersize=8, color="purple", linestyle="none",
                  label=f"held-out set: drop {holdout['drop']:.2f} (its FP32 {holdout['fp32_ap50']:.2f}; "
                        f"drawn at FP32 above - drop)")
    axes.set_xlabel(f"Conv layers kept in higher precision (of {report['quantized_layers']} quantized)")
    axes.set_ylabel("AP50 (%)")
    axes.set_xticks(ks)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    title = f"INT8 ({report['target']}) with an AP50 budget, {report['val']['images']} selection images"
    if holdout is not None:
        title += f", {holdout['images']} held out"
    if chosen is None:
        title += ": no fit"
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _evaluation_set(path, names, source, what: str) -> tuple[list, bool]:
    """(samples, labelled) of a validation or held-out set, checked against the model's classes."""
    from ..data.dataset import load_dataset

    dataset = load_dataset(path, names)
    if not dataset.samples:
        raise QuantizeError(None, f"{path}: no images in the {what}")
    labelled = any(len(s.classes) for s in dataset.samples)
    if labelled and len(dataset.names) != len(source.metadata.names):
        raise QuantizeError(source.path, f"the model has {len(source.metadata.names)} classes, the {what} "
                                         f"{path} {len(dataset.names)}")
    return list(dataset.samples), labelled


def _labelled(measured: Path, samples: list, labelled: bool, path) -> tuple[list, str]:
    """(samples with labels, mode): a set without labels is labelled with the FP32 model's own detections."""
    if labelled:
        return samples, "labels"
    logger.info("%s has no labels: AP50 measures agreement with the FP32 model's own detections (conf %g), "
                "not accuracy", path, AGREEMENT_CONF)
    agreed = agreement_samples(measured, samples)
    if not any(len(s.classes) for s in agreed):
        raise QuantizeError(None, f"{path}: no labels, and the FP32 model detects nothing above {AGREEMENT_CONF} "
                                  "on it: no agreement to measure")
    return agreed, "agreement with FP32"


def quantize_int8_budget(src: str | os.PathLike, dst: str | os.PathLike,
                         calib: str | os.PathLike | Sequence[str | os.PathLike], val: str | os.PathLike, *,
                         max_ap_drop: float, target: str = "tensorrt", method: str = "entropy",
                         num_images: int = DEFAULT_NUM_IMAGES, seed: int = 0, max_excluded: int | None = None,
                         cache_dir: str | os.PathLike | None = None,
                         val_names: Sequence[str] | str | os.PathLike | None = None,
                         holdout: str | os.PathLike | None = None,
                         holdout_names: Sequence[str] | str | os.PathLike | None = None, conf: float = DEFAULT_CONF,
                         max_det: int = DEFAULT_MAX_DET, batch: int = 8, timing_runs: int = TIMING_RUNS,
                         progress: bool = False) -> dict[str, Any]:
    """Write INT8 ``dst`` whose AP50 on ``val`` is at most ``max_ap_drop`` points below FP32's (module docstring).

    Args:
        src: the FP32 ONNX export, any flavour. An end2end or plugin graph is measured as its raw
            heads (:func:`~yolov3_trt.quantize.model_io.raw_copy`: ONNX Runtime cannot run the
            plugin node, and host decode + NMS at evaluate's thresholds is the tail's arithmetic);
            the file written is ``src`` quantized with the chosen layers kept out, its tail put
            back as :func:`~yolov3_trt.quantize.quantize_int8` does.
        dst: the INT8 ONNX to write; its report JSON and PNG go beside it (:func:`report_paths`).
        calib, target, method, num_images, seed, cache_dir: as for
            :func:`~yolov3_trt.quantize.quantize_int8` (every step is one of its calls; a cached
            step, the excluded nodes part of its key, is copied instead of calibrated).
        val: the selection set, which chooses k: a dataset
            (:func:`yolov3_trt.data.dataset.load_dataset`: YOLO folder or list, COCO JSON);
            ``val_names`` its class names where they are not beside it. A set without labels (a
            folder of images) is labelled with the FP32 model's own detections above
            :data:`AGREEMENT_CONF`: AP50 then measures agreement with FP32, and the report's
            ``val.mode`` says so.
        holdout: a held-out set (as ``val``; no image of ``val``) on which the chosen file's drop
            is measured again after k is chosen; the budget must hold there too. None: the drop
            is known on the selection set only (the report says ``holdout: null``).
        max_ap_drop: the budget, AP50 points (percent) FP32 minus INT8; a negative one asks INT8
            to beat FP32.
        max_excluded: the most Conv layers kept in higher precision (None: every quantized one).
        conf, max_det, batch: the Detector's settings for AP (evaluate's defaults).
        timing_runs: timed runs of each speed measurement.

    Returns:
        The report (also written as JSON): ``budget``, ``fp32_ap50``, ``steps`` (each ``k``,
        ``excluded`` node names, ``layers``, ``ap50``, ``drop``, ``fits``), ``ranking``, ``chosen``
        (the step written), ``holdout``, ``speed`` (per CPU runtime ``k0_ms``, ``chosen_ms``,
        ``slowdown``), ``result``, ``files``.

    Raises:
        AccuracyBudgetError: no k up to the limit meets the budget on ``val``, or the chosen k
            misses it on ``holdout``; the report JSON and PNG are written (``result`` says which),
            the ONNX is not.
        QuantizeError, CalibrationError, FileError, DatasetError: as quantize_int8 and load_dataset
            (checked before any calibration), a non-finite budget, a negative ``max_excluded``,
            a validation or held-out set of other classes or with images of the other.
    """
    if not isinstance(max_ap_drop, (int, float)) or not math.isfinite(max_ap_drop):
        raise QuantizeError(None, f"max_ap_drop must be a finite number of AP50 points, not {max_ap_drop!r}")
    if max_excluded is not None and (not isinstance(max_excluded, int) or max_excluded < 0):
        raise QuantizeError(None, f"max_excluded must be a whole number >= 0, not {max_excluded!r}")
    check_request(target, method)
    source = load_source(src)
    selection, selection_labelled = _evaluation_set(val, val_names, source, "validation set")
    held = None
    if holdout is not None:
        held = _evaluation_set(holdout, holdout_names, source, "held-out set")
        shared = {Path(s.image).resolve() for s in selection} & {Path(s.image).resolve() for s in held[0]}
        if shared:
            raise QuantizeError(None, f"{holdout}: {len(shared)} of its images are in the validation set {val} "
                                      f"(e.g. {sorted(shared)[0]}): a held-out set shares no image with it")
    images = sample_images(calib, num_images, seed)  # before any calibration: a too small set fails here
    dst = Path(dst)
    json_path, png_path = report_paths(dst)
    budget = float(max_ap_drop)
    num_classes = len(source.metadata.names)
    tailed = source.metadata.flavour in (Flavour.END2END.value, Flavour.PLUGIN.value)

    with tempfile.TemporaryDirectory(prefix="yolov3_trt-budget-") as folder:
        measured = raw_copy(source, Path(folder) / "raw.onnx") if tailed else source.path
        samples, mode = _labelled(measured, selection, selection_labelled, val)
        files: dict[int, Path] = {}
        steps: list[dict[str, Any]] = []
        ranking: list[dict[str, Any]] = []

        def step(k: int) -> dict[str, Any]:
            convs = [r["node"] for r in ranking[:k]]
            excluded = excluded_nodes(prepared, convs, target) if convs else []
            path = Path(folder) / f"k{k}.onnx"
            quantize_int8(measured, path, calib, target=target, method=method, num_images=num_images, seed=seed,
                          cache_dir=cache_dir, progress=progress, nodes_to_exclude=excluded or None)
            ap50 = _ap50(path, samples, num_classes, conf, max_det, batch)
            files[k] = path
            record = {"k": k, "excluded": excluded, "layers": [r["layer"] for r in ranking[:k]], "ap50": ap50,
                      "drop": fp32_ap50 - ap50}
            record["fits"] = record["drop"] <= budget + _TOLERANCE
            steps.append(record)
            logger.info("k = %d: AP50 %.2f, drop %.2f points (budget %g)%s", k, ap50, record["drop"], budget,
                        "" if not excluded else f", excluded {', '.join(convs)}")
            return record

        prepared = prepare(load_source(measured), folder)  # the graph the quantizers see (-inf pads folded)
        fp32_ap50 = _ap50(measured, samples, num_classes, conf, max_det, batch)
        first = step(0)
        chosen = first if first["fits"] else None
        if chosen is None:
            blob = load_calibration_images(images, source.size, source.metadata.resize, progress=progress)
            ranking = _ranking(measured, files[0], blob)
            limit = len(ranking) if max_excluded is None else min(max_excluded, len(ranking))
            miss, k = 0, 1
            while chosen is None and miss < limit:
                k = min(k, limit)
                record = step(k)
                if record["fits"]:
                    chosen = record
                else:
                    miss, k = k, 2 * k
            while chosen is not None and chosen["k"] - miss > 1:  # the smallest k that fits
                record = step((miss + chosen["k"]) // 2)
                if record["fits"]:
                    chosen = record
                else:
                    miss = record["k"]
        report: dict[str, Any] = {
            "source": str(source.path), "output": str(dst), "target": target, "method": method,
            "source_flavour": source.metadata.flavour,
            "measured_as": "raw heads (host decode + NMS, the tail's arithmetic)" if tailed else "the file itself",
            "calibration": {"path": str(calib) if isinstance(calib, (str, os.PathLike)) else [str(p) for p in calib],
                            "images": len(images), "seed": seed},
            "val": _set_record(val, samples, mode, conf, max_det),
            "budget": budget, "fp32_ap50": fp32_ap50, "quantized_layers": len(_quantized_convs(files[0])),
            "max_excluded": max_excluded, "schedule": SCHEDULE, "ranking": ranking,
            "steps": sorted(steps, key=lambda s: s["k"]),
            "chosen": None if chosen is None else {key: chosen[key] for key in ("k", "excluded", "layers", "ap50",
                                                                                "drop")},
            "holdout": None, "speed": None, "result": "fits",
            "files": {"onnx": str(dst), "json": str(json_path), "png": str(png_path)},
        }
        failure = None
        if chosen is None:
            best = min(steps, key=lambda s: (s["drop"], s["k"]))
            limit_text = f"max_excluded={max_excluded}" if max_excluded is not None and max_excluded < len(ranking) \
                else f"all {len(ranking)} quantized Conv layers"
            tried = ", ".join(str(s["k"]) for s in report["steps"])
            failure = AccuracyBudgetError(
                source.path, f"no INT8 file meets the AP50 budget of {budget:g} points on {val}: the best drop was "
                             f"{best['drop']:.2f} points with k = {best['k']} layers in higher precision (tried "
                             f"k = {tried}; limit {limit_text}); report {json_path}", best["drop"], best["k"])
            report["result"] = "no fit on the validation set"
        elif held is not None:
            held_samples, held_mode = _labelled(measured, *held, holdout)
            held_fp32 = _ap50(measured, held_samples, num_classes, conf, max_det, batch)
            held_ap50 = _ap50(files[chosen["k"]], held_samples, num_classes, conf, max_det, batch)
            drop = held_fp32 - held_ap50
            report["holdout"] = {**_set_record(holdout, held_samples, held_mode, conf, max_det),
                                 "fp32_ap50": held_fp32, "ap50": held_ap50, "drop": drop,
                                 "fits": drop <= budget + _TOLERANCE}
            logger.info("held-out %s: AP50 %.2f against FP32 %.2f, drop %.2f points (budget %g)", holdout,
                        held_ap50, held_fp32, drop, budget)
            if not report["holdout"]["fits"]:
                failure = AccuracyBudgetError(
                    source.path, f"k = {chosen['k']} meets the AP50 budget of {budget:g} points on {val} (drop "
                                 f"{chosen['drop']:.2f}) but not on the held-out {holdout} (drop {drop:.2f}): a "
                                 f"larger validation set, or a looser budget; report {json_path}",
                    drop, chosen["k"])
                report["result"] = "no fit on the held-out set"
        if failure is not None:  # the report shows how close it came; no ONNX is written
            report["files"]["onnx"] = None
            plot_budget(report, png_path)
            atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
            raise failure
        final = files[chosen["k"]]
        if tailed:  # the measured file itself, with the source's tail and metadata put back
            final = _with_tail(final, source, Path(folder) / "final.onnx")
        x = load_calibration_images(images[:1], source.size, source.metadata.resize, progress=False)
        report["speed"] = speed_cost(files[0], files[chosen["k"]], x, timing_runs, target)
        ap_budget = {"budget": budget, "drop": chosen["drop"], "ap50": chosen["ap50"], "fp32_ap50": fp32_ap50,
                     "k": chosen["k"], "excluded": chosen["excluded"], "layers": chosen["layers"],
                     "val": str(val), "mode": mode,
                     "holdout": None if report["holdout"] is None else {
                         key: report["holdout"][key] for key in ("path", "images", "drop", "ap50", "fp32_ap50")}}
        plot_budget(report, png_path)
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
        _write_onnx(final, dst, ap_budget)  # last: the model appears with its report
    logger.info("wrote %s (k = %d, drop %.2f points), %s, %s", dst, chosen["k"], chosen["drop"], json_path, png_path)
    return report


def _with_tail(path: Path, source, out: Path) -> Path:
    """The quantized raw-heads file ``path`` with ``source``'s tail appended and its metadata (plus
    the quantizer's precision, target and calibration keys), as quantize_int8 writes a tailed file."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    restore_tail(model, source)
    finish(model, source, out, **{k: props[PREFIX + k] for k in QUANTIZE_KEYS if PREFIX + k in props})
    return out


def _set_record(path, samples: Sequence, mode: str, conf: float, max_det: int) -> dict[str, Any]:
    return {"path": str(path), "images": len(samples), "conf": conf, "max_det": max_det, "mode": mode,
            **({"label_conf": AGREEMENT_CONF} if mode != "labels" else {})}


def _write_onnx(path: Path, dst: Path, ap_budget: dict[str, Any]) -> None:
    """``path`` with ``yolov3_trt.ap_budget`` added to its metadata, saved to ``dst`` atomically."""
    import onnx

    model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != PREFIX + "ap_budget"]
    del model.metadata_props[:]
    for key, value in kept + [(PREFIX + "ap_budget", json.dumps(ap_budget))]:
        model.metadata_props.add(key=key, value=value)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
