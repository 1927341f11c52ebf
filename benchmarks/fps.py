"""Speed of YOLOv3 here, beside the paper's Titan X rows: ``python benchmarks/fps.py``.

For each backend x precision x input size (x batch): warm-up runs, then timed runs of the whole
Detector (preprocess + inference + postprocess) on a real photo, with latency percentiles, FPS,
and the BFLOP/s the inference achieves (Darknet's FLOP count / inference time), also as a
fraction of this machine's FP32 GEMM rate measured in the same run. Peers are timed on the same
cfg and weights when installed: PyTorch eager and OpenCV DNN 4.x (network forward only, as they
come). Writes a table to the terminal and fps.json, fps.csv and fps.png to --output.

TensorRT rows (backend ``tensorrt``: FP32, FP16 and INT8 engines built from the same raw ONNX
files as the ONNX Runtime rows, batch ``--trt-batch``, run by the Detector's tensorrt backend)
fill in on a machine with TensorRT and a GPU; elsewhere each is a row that says "not available"
and why.

--resize-kernels darknet,opencv times each Detector row (onnxruntime, openvino, tensorrt, torch)
once per resize kernel (the Detector's ``resize_kernel``: Darknet's exact resize, or
``cv2.resize``); each such row's JSON has ``"resize_kernel"``, and rows of another kernel than
Darknet's say which in the table, the CSV and the picture ("int8-cpu (opencv resize)").

Without --weights the network gets random weights in Darknet format whose heads behave like a
trained detector's (moderate logits, a few boxes over the threshold), so post-processing costs
what it costs with real weights; speed does not depend on the weight values otherwise.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import gemm_gflops, machine_info, percentile, physical_cores, timed  # noqa: E402
from plot import plot, table  # noqa: E402

# Each model against its own published row, never another model's (Titan X, Darknet). Full YOLOv3:
# the paper, Table 3 / Figure 3 (ms per image; FPS as on the Darknet website); yolov3-tiny and
# yolov3-spp: the Darknet website's table (FPS only; mAP is COCO mAP@0.5 there, AP50 in the paper).
PUBLISHED = {
    "yolov3": {"source": "YOLOv3 paper, Table 3 (Titan X, Darknet)", "rows": [
        {"size": 320, "ms": 22.0, "fps_website": 45, "bflops": 38.973, "ap50": 51.5},
        {"size": 416, "ms": 29.0, "fps_website": 35, "bflops": 65.864, "ap50": 55.3},
        {"size": 608, "ms": 51.0, "fps_website": 20, "bflops": 140.692, "ap50": 57.9}]},
    "yolov3-tiny": {"source": "Darknet website (Titan X)", "rows": [
        {"size": 416, "ms": 1e3 / 220, "fps_website": 220, "bflops": 5.56, "ap50": 33.1}]},
    "yolov3-spp": {"source": "Darknet website (Titan X)", "rows": [
        {"size": 608, "ms": 1e3 / 20, "fps_website": 20, "bflops": 141.45, "ap50": 60.6}]},
}
PAPER_DARKNET53_BFLOPS_PER_S = 1457  # Table 2: Darknet-53 backbone on a Titan X
# The engines' precisions: INT8 is the Q/DQ file placed for TensorRT (the CPU one is not built).
TRT_PRECISIONS = ("fp32", "fp16", "int8-tensorrt")
DETECTOR_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "torch")  # the rows timed once per --resize-kernels
DEFAULT_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "darknet" / "images" / "dog.jpg"


from yolov3_trt.cli.flags import BENCH_BACKENDS as BACKENDS  # noqa: E402,F401


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/fps.py", description=__doc__.split("\n")[0])
    add_flag(p, "--cfg", default="yolov3")
    add_flag(p, "--weights", default_text="random, see --help text")
    add_flag(p, "--sizes", default="320,416,608")
    add_flag(p, "--infer-batches", default="1")
    add_flag(p, "--backends", default="onnxruntime,openvino,tensorrt,torch-eager,opencv-dnn,openvino-net")
    add_flag(p, "--trt-batch", default="1,8")
    add_flag(p, "--precisions", default="fp32,bf16,fp16,int8-cpu,int8-tensorrt")
    add_flag(p, "--resize-kernels", default="darknet")
    add_flag(p, "--calib", default=str(DEFAULT_PHOTO.parent), default_text="the Darknet samples; speed does not "
             "depend on them")
    add_flag(p, "--calib-images", default=4)
    add_flag(p, "--warmup", default=3)
    add_flag(p, "--runs", default=10)
    add_flag(p, "--threads", default=physical_cores(), default_text="the physical cores")
    add_flag(p, "--image", default=str(DEFAULT_PHOTO), default_text="Darknet's dog.jpg")
    add_flag(p, "--output", default="runs/benchmarks", metavar="DIR", help="folder for fps.json, fps.csv, fps.png")
    add_flag(p, "--no-gemm")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, each checked here (one-line error, exit 2) before any model is built."""
    args = build_parser().parse_args(argv)
    # argparse passes string defaults through type, so every list above is a list here.
    args.sizes_text = ",".join(map(str, args.sizes))
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """YoloV3TrtError (one line) for a cfg, size, weights or calibration folder that cannot work,
    before the first model is built: a bad --weights used to surface minutes in, as a traceback."""
    from yolov3_trt.darknet.builtin import load_cfg
    from yolov3_trt.darknet.layers import build_network
    from yolov3_trt.darknet.weights import expected_size, read_header
    from yolov3_trt.errors import DarknetWeightsError, FileError

    network = build_network(load_cfg(args.cfg))
    for size in args.sizes:
        network.shapes(size, size)  # too large, or too small for the network's strides
    if args.weights:
        header = read_header(args.weights)  # FileError: missing; DarknetWeightsError: not a weights file
        expected, found = expected_size(network, header), Path(args.weights).stat().st_size
        if found != expected:
            raise DarknetWeightsError(args.weights, f"--weights: {network.source} needs {expected:,} bytes, the file "
                                                    f"has {found:,} ({found - expected:+,}): not weights for --cfg "
                                                    f"{args.cfg}")
    int8 = [p for p in args.precisions if p.startswith("int8")]
    if int8 and {"onnxruntime", "openvino", "openvino-net"} & set(args.backends) and not Path(args.calib).exists():
        raise FileError(args.calib, f"no such calibration folder (--calib, for {', '.join(int8)})")
    if {"onnxruntime", "openvino", "openvino-net", "tensorrt", "torch"} & set(args.backends):
        from yolov3_trt.export.onnx_export import check_export_memory

        for size in args.sizes:  # the ONNX files are exported at batch 1: refused here, not killed mid-run
            check_export_memory(network, size, size)


class Bench:
    """Models, inputs and the measurements of one benchmark run."""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        from yolov3_trt.darknet.builtin import load_cfg
        from yolov3_trt.darknet.cfg import write_cfg
        from yolov3_trt.darknet.layers import build_network
        from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
        from yolov3_trt.errors import YoloV3TrtError
        from yolov3_trt.preprocess import read_image

        self.args, self.workdir = args, workdir
        self.cfg = load_cfg(args.cfg)
        self.network = build_network(self.cfg)
        self.cfg_path = workdir / "model.cfg"
        write_cfg(self.cfg, self.cfg_path)
        if args.weights:
            self.weights = Path(args.weights)
        else:
            self.weights = workdir / "random.weights"
            write_darknet_weights(self.weights, self.network,
                                  random_darknet_weights(self.network, 0, head_gain=0.1, objectness_bias=-6.0))
        try:
            self.image = read_image(args.image)
        except YoloV3TrtError:
            logging.warning("%s not readable: using a synthetic 768x576 image", args.image)
            self.image = np.random.default_rng(0).integers(0, 256, (576, 768, 3), dtype=np.uint8)
        self.rows: list[dict[str, Any]] = []

    def bflops(self, size: int) -> float:
        return sum(s.bflops for s in self.network.shapes(size, size))

    def add(self, backend: str, precision: str, size: int, batch: int, totals: list[float],
            parts: dict[str, list[float]] | None = None, resize_kernel: str | None = None) -> None:
        infer = parts["infer"] if parts else totals
        p50_infer = percentile(infer, 50)
        row = {"backend": backend, "precision": precision, "size": size, "batch": batch,
               "p50_ms": percentile(totals, 50), "p90_ms": percentile(totals, 90), "p99_ms": percentile(totals, 99),
               "preprocess_ms": percentile(parts["preprocess"], 50) if parts else None,
               "infer_ms": p50_infer,
               "postprocess_ms": percentile(parts["postprocess"], 50) if parts else None,
               "fps": batch * 1e3 / percentile(totals, 50),
               "bflops_per_s": self.bflops(size) * batch / (p50_infer / 1e3),
               "scope": "end to end" if parts else "forward only"}
        if resize_kernel is not None:  # a Detector row
            row["resize_kernel"] = resize_kernel
        self.rows.append(row)

    # ---- backends ------------------------------------------------------------------------

    def detector(self, backend: str, size: int, batch: int, precision: str = "fp32",
                 resize_kernel: str = "darknet") -> None:
        from yolov3_trt.runtime.detector import Detector

        if backend in ("onnxruntime", "openvino"):
            path = self.onnx(size, "fp32" if precision == "bf16" else precision)
            options = {"precision": "bf16" if precision == "bf16" else "f32"} if backend == "openvino" else None
            detector = Detector(path, backend, threads=self.args.threads, backend_options=options,
                                resize_kernel=resize_kernel)
        elif backend == "tensorrt":
            detector = Detector(self.engine(size, precision, batch), "tensorrt", resize_kernel=resize_kernel)
        else:
            import torch

            torch.set_num_threads(self.args.threads)  # process-wide: the application's call, not the Detector's
            detector = Detector.from_model(self.torch_model(), self.names(), size=(size, size), device="cpu",
                                           resize_kernel=resize_kernel)
        images = [self.image] * batch
        parts: dict[str, list[float]] = {"preprocess": [], "infer": [], "postprocess": []}
        totals: list[float] = []

        def run() -> None:
            detector.detect_batch(images)

        for _ in range(self.args.warmup):
            run()
        for _ in range(self.args.runs):
            run()
            for key in parts:
                parts[key].append(detector.last_timings[key])
            totals.append(detector.last_timings["total"])
        detector.close()
        self.add(backend, precision, size, batch, totals, parts, resize_kernel)

    def torch_eager(self, size: int, batch: int) -> None:
        import torch

        torch.set_num_threads(self.args.threads)
        model = self.torch_model()
        x = torch.rand(batch, 3, size, size)

        def run() -> None:
            with torch.inference_mode():
                model(x)

        self.add("torch-eager", "fp32", size, batch, timed(run, self.args.warmup, self.args.runs))

    def opencv_dnn(self, size: int, batch: int) -> None:
        import cv2

        if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
            self.rows.append({"backend": "opencv-dnn", "precision": "fp32", "size": size, "batch": batch,
                              "scope": f"not available: OpenCV {cv2.__version__} has no Darknet importer (5.x "
                                       "dropped it): pip install -e '.[bench]' (opencv-python-headless<5)"})
            return
        cv2.setNumThreads(self.args.threads)
        net = cv2.dnn.readNetFromDarknet(str(self.cfg_path), str(self.weights))
        names = net.getUnconnectedOutLayersNames()
        blob = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)

        def run() -> None:
            net.setInput(blob)
            net.forward(names)

        self.add("opencv-dnn", "fp32", size, batch, timed(run, self.args.warmup, self.args.runs))

    def openvino_net(self, size: int, batch: int, precision: str) -> None:
        """OpenVINO's own network time (the model read and compiled as the openvino backend reads and
        compiles it, infer on a blob): the CPU peer row."""
        import openvino as ov

        from yolov3_trt.runtime.backends.openvino_backend import compile_config, model_as_run

        path = self.onnx(size, "fp32" if precision == "bf16" else precision)
        core = ov.Core()
        config = compile_config(precision, self.args.threads)
        request = core.compile_model(model_as_run(core, path), "CPU", config).create_infer_request()
        blob = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
        self.add("openvino-net", precision, size, batch, timed(lambda: request.infer({0: blob}), self.args.warmup,
                                                               self.args.runs))

    def tensorrt(self, size: int, batch: int, precision: str, resize_kernel: str = "darknet") -> None:
        """A TensorRT row, or a "not available" row saying why (no TensorRT or no GPU here)."""
        from yolov3_trt.build import availability

        ok, reason = availability()
        if ok:
            self.detector("tensorrt", size, batch, precision, resize_kernel)
        else:
            self.rows.append({"backend": "tensorrt", "precision": precision, "size": size, "batch": batch,
                              "scope": f"not available: {reason}", "resize_kernel": resize_kernel})

    # ---- shared models -------------------------------------------------------------------

    def names(self) -> list[str]:
        from yolov3_trt.names import default_names
        return default_names(self.network.heads()[0].classes)

    def torch_model(self):
        if not hasattr(self, "_torch_model"):
            from yolov3_trt.model.yolov3 import YoloV3
            self._torch_model = YoloV3(self.cfg).load_darknet_weights(self.weights).eval()
        return self._torch_model

    def engine(self, size: int, precision: str, batch: int) -> Path:
        """A TensorRT engine of the raw ONNX at this precision: profile 1..max(--trt-batch), tuned for ``batch``."""
        from yolov3_trt.build.pipeline import build_engine
        from yolov3_trt.build.steps import BuildOptions

        high = max(self.args.trt_batch)
        path = self.workdir / f"{precision}-{size}-b{batch}of{high}.engine"  # one per row: each tuned for its batch
        if not path.exists():
            build_engine(self.onnx(size, precision), path, BuildOptions(batch=(1, batch, high), progress=False))
        return path

    def onnx(self, size: int, precision: str = "fp32") -> Path:
        path = self.workdir / f"{precision}-{size}.onnx"
        if path.exists():
            return path
        if precision == "fp32":
            from yolov3_trt.export.onnx_export import export_onnx
            export_onnx(self.torch_model(), path, self.names(), size=(size, size))
        elif precision == "fp16":
            from yolov3_trt.quantize import quantize_fp16
            quantize_fp16(self.onnx(size), path)
        elif precision in ("int8-cpu", "int8-tensorrt"):
            from yolov3_trt.quantize import quantize_int8
            # "max": the cheapest calibration; ranges do not change the speed.
            quantize_int8(self.onnx(size), path, self.args.calib, target=precision.split("-")[1], method="max",
                          num_images=self.args.calib_images, progress=False)
        else:
            raise SystemExit(f"error: unknown precision {precision!r}")
        return path


def paper_rows(cfg: str, sizes: list[int]) -> tuple[str, list[dict[str, Any]]]:
    """(source, rows) published for ``cfg`` (a built-in name) at ``sizes``; BFLOP/s from the
    published BFLOPs over the published time. A cfg file has no published row: ("", [])."""
    published = PUBLISHED.get(cfg)
    if published is None:
        return "", []
    return published["source"], [
        {"size": p["size"], "ms": p["ms"], "fps": 1e3 / p["ms"], "fps_website": p["fps_website"], "ap50": p["ap50"],
         "bflops_per_s": p["bflops"] / (p["ms"] / 1e3)} for p in published["rows"] if p["size"] in sizes]


def shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the table, CSV and picture show them: a Detector row of another resize kernel than
    Darknet's has it in its precision ("int8-cpu (opencv resize)"), so it is its own line, bar and
    legend entry; fps.json keeps the plain precision and the ``resize_kernel`` key."""
    return [{**r, "precision": f"{r['precision']} ({r['resize_kernel']} resize)"}
            if r.get("resize_kernel", "darknet") != "darknet" else r for r in rows]


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    check_inputs(args)
    sizes, batches, backends = args.sizes, args.infer_batches, args.backends
    from yolov3_trt.fileio import atomic_path, atomic_write_json, atomic_write_text

    with tempfile.TemporaryDirectory(prefix="yolov3_trt-fps-") as tmp:
        bench = Bench(args, Path(tmp))
        precisions = args.precisions
        trt_batches = args.trt_batch
        trt_precisions = [p for p in precisions if p in TRT_PRECISIONS]
        per_backend = {"onnxruntime": [p for p in precisions if p != "bf16"], "tensorrt": trt_precisions,
                       "openvino": precisions, "openvino-net": precisions}
        # each Detector row once per resize kernel, the kernels of one configuration side by side
        jobs = [(b, s, n, p, k) for s in sizes for b in backends for n in (trt_batches if b == "tensorrt" else batches)
                for p in per_backend.get(b, ["fp32"])
                for k in (args.resize_kernels if b in DETECTOR_BACKENDS else [None])]
        for backend, size, batch, precision, kernel in tqdm(jobs, desc="fps", unit="config"):
            if backend.startswith("openvino") and importlib.util.find_spec("openvino") is None:
                bench.rows.append({"backend": backend, "precision": precision, "size": size, "batch": batch,
                                   "scope": "not available: openvino is not installed (pip install '.[openvino]')",
                                   **({"resize_kernel": kernel} if kernel else {})})
            elif backend == "openvino-net":
                bench.openvino_net(size, batch, precision)
            elif backend in ("onnxruntime", "openvino", "torch"):
                bench.detector(backend, size, batch, precision, kernel)
            elif backend == "tensorrt":
                bench.tensorrt(size, batch, precision, kernel)
            elif backend == "torch-eager":
                bench.torch_eager(size, batch)
            elif backend == "opencv-dnn":
                bench.opencv_dnn(size, batch)
            else:
                raise SystemExit(f"error: unknown backend {backend!r}")
        source, paper = paper_rows(args.cfg, sizes)
    # The GEMM ceiling is measured after the configs: measured first, it slowed the next ONNX
    # Runtime config ~2x (yolov3-416 FP32: 726-929 ms right after it, 365 ms without it).
    gemm = {} if args.no_gemm else gemm_gflops(args.threads)
    best_gemm = max(gemm.values()) if gemm else 0.0
    machine = machine_info()
    title = (f"{args.cfg}, {'given' if args.weights else 'random'} weights, {machine['cpu']} "
             f"({machine['cores']} cores, {args.threads} threads)")
    print(title)
    if gemm:
        print("FP32 GEMM 4096x4096: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items()))
    rows = shown(bench.rows)
    print(table(rows, best_gemm))
    if paper:
        print(f"{args.cfg}, {source}: " + ", ".join(
            f"{p['size']}: {p['ms']:.1f} ms ({p['fps_website']} FPS, {p['bflops_per_s']:.0f} BFLOP/s, AP50 {p['ap50']})"
            for p in paper) + (f"; Darknet-53 backbone {PAPER_DARKNET53_BFLOPS_PER_S} BFLOP/s" if args.cfg == "yolov3"
                               else ""))
    else:
        print(f"{args.cfg}: no published row for this model at sizes {args.sizes_text} (published: "
              + "; ".join(f"{k} at {', '.join(str(r['size']) for r in v['rows'])}" for k, v in PUBLISHED.items()) + ")")
    out = Path(args.output)
    result = {"command": "python benchmarks/" + " ".join([Path(__file__).name, *(argv or sys.argv[1:])]),
              "title": title, "machine": machine, "threads": args.threads, "gemm_gflops": gemm,
              "rows": bench.rows, "paper": paper, "paper_source": source,
              "paper_darknet53_bflops_per_s": PAPER_DARKNET53_BFLOPS_PER_S}
    atomic_write_json(out / "fps.json", result)
    buffer = io.StringIO()
    # the longest row's keys, then any only other rows have (a "not available" row's resize_kernel)
    fields = list(dict.fromkeys(k for r in sorted(rows, key=len, reverse=True) for k in r))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "fps.csv", buffer.getvalue())
    with atomic_path(out / "fps.png") as tmp_png:
        plot([r for r in rows if "p50_ms" in r], paper, best_gemm, title, tmp_png,
             paper_label=f"{args.cfg}: {source}" if paper else "no published row")
    print(f"wrote {out / 'fps.json'}, {out / 'fps.csv'}, {out / 'fps.png'}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from yolov3_trt.cli.common import run  # user errors: one line, exit 2 (run keeps this logging level)

    sys.exit(run(main))
