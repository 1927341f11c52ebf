"""What each ONNX Runtime CPU setting gains: ``python benchmarks/ort_settings.py``.

Times ``session.run`` of the raw yolov3 ONNX (random weights; speed does not depend on their
values) under one setting change at a time, against ONNX Runtime's defaults, and writes
ort_settings.json/.png to --output. The Detector's backend uses the winners
(yolov3_trt/runtime/backends/ort_backend.py).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fps import timed  # noqa: E402
from machine import machine_info, physical_cores  # noqa: E402


def variants(threads: int):
    """(name, session options kwargs, use I/O binding) for each setting measured."""
    return [
        ("onnxruntime defaults", None, False),
        ("yolov3_trt backend settings", {}, False),
        ("  optimisation: none", {"optimization": "none"}, False),
        ("  optimisation: basic", {"optimization": "basic"}, False),
        ("  optimisation: extended", {"optimization": "extended"}, False),
        ("  1 thread", {"threads": 1}, False),
        (f"  {threads} threads", {"threads": threads}, False),
        ("  memory arena off", {"arena": False}, False),
        ("  I/O binding", {}, True),
    ]


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/ort_settings.py", description=__doc__.split("\n")[0])
    add_flag(p, "--cfg", default="yolov3")
    add_flag(p, "--size", default=(416, 416), default_text="416")
    add_flag(p, "--runs", default=10)
    add_flag(p, "--warmup", default=3)
    add_flag(p, "--output", default="runs/benchmarks", metavar="DIR",
             help="folder for ort_settings.json and ort_settings.png")
    return p

def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.size[0] != args.size[1]:
        p.error(f"argument --size: {args.size[0]}x{args.size[1]}: the benchmark sizes are square, give N")
    args.size = args.size[0]
    import onnxruntime as ort

    from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.fileio import atomic_path, atomic_write_json
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.names import default_names
    from yolov3_trt.runtime.backends.ort_backend import session_options

    threads = physical_cores()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = YoloV3.from_cfg(args.cfg).eval()
        weights = Path(tmp) / "w.weights"
        write_darknet_weights(weights, model.network, random_darknet_weights(model.network))
        model.load_darknet_weights(weights)
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, default_names(model.num_classes), size=(args.size, args.size))
        blob = np.random.default_rng(0).random((1, 3, args.size, args.size), dtype=np.float32)
        for name, kwargs, binding in tqdm(variants(threads), desc="settings"):
            options = None if kwargs is None else session_options(**kwargs)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            if binding:
                io = session.io_binding()
                io.bind_cpu_input(session.get_inputs()[0].name, blob)
                for out in session.get_outputs():
                    io.bind_output(out.name)

                def run() -> None:
                    session.run_with_iobinding(io)
            else:
                def run() -> None:
                    session.run(None, {"images": blob})
            ms = timed(run, args.warmup, args.runs)
            results.append({"setting": name.strip(), "p50_ms": float(np.median(ms)), "min_ms": float(np.min(ms))})
    base = results[0]["p50_ms"]
    print(f"{args.cfg} at {args.size}, batch 1, {machine_info()['cpu']}, {threads} cores, "
          f"onnxruntime {ort.__version__}")
    print(f"{'setting':<32} {'p50 ms':>8} {'min ms':>8} {'vs defaults':>12}")
    for (name, _, _), r in zip(variants(threads), results):
        print(f"{name:<32} {r['p50_ms']:8.1f} {r['min_ms']:8.1f} {100 * (base / r['p50_ms'] - 1):+11.1f}%")
    out = Path(args.output)
    atomic_write_json(out / "ort_settings.json",
                      {"command": "python benchmarks/ort_settings.py " + " ".join(argv or sys.argv[1:]),
                       "machine": machine_info(), "results": results})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh([r["setting"] for r in results][::-1], [r["p50_ms"] for r in results][::-1], color="tab:blue")
    ax.set_xlabel(f"ms per {args.cfg}-{args.size} inference (p50, lower is better)")
    fig.tight_layout()
    with atomic_path(out / "ort_settings.png") as tmp_png:
        fig.savefig(tmp_png, dpi=110)
    print(f"wrote {out / 'ort_settings.json'}, {out / 'ort_settings.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
