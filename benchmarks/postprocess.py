"""Host post-processing time: the plugin's host build against the numpy post-processor.

``python benchmarks/postprocess.py`` times decode + NMS of raw heads at 416 (batch 1) with conf
0.001 (evaluation) and 0.25 (deployment), default iou/max_det/pre_nms_top_k, for three sets of
heads: yolov3 (80 classes) with random weights, default and with a 0.15 head gain, on the
Darknet photos (hundreds of thousands of (box, class) pairs pass: the capacity-overflow worst
case), and the checkpoint trained on the synthetic shapes set (README, "Training"; 6 classes, 2
heads) on its validation images, when present: the regime of a trained detector. Both
post-processors must return the same detections (checked on every input). Writes
postprocess.json and postprocess.png to --output. Only the post-processing is timed, not the
network (whose outputs are computed once with ONNX Runtime).
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fps import timed  # noqa: E402
from machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "darknet" / "images"
TRAINED = ROOT / "docs" / "benchmarks" / "train_synthetic" / "run" / "best.pt"
TRAINED_IMAGES = ROOT / "docs" / "benchmarks" / "train_synthetic" / "data" / "images"
GAINS = {"random weights": None, "random, head gain 0.15": 0.15}  # random_darknet_weights head_gain


def random_model(cfg: str, gain: float | None, workdir: Path):
    from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
    from yolov3_trt.model.yolov3 import YoloV3

    model = YoloV3.from_cfg(cfg).eval()
    weights = workdir / f"{cfg}-{gain}.weights"
    kwargs = {} if gain is None else {"head_gain": gain}
    write_darknet_weights(weights, model.network, random_darknet_weights(model.network, 0, **kwargs))
    return model.load_darknet_weights(weights)


def head_outputs(model, size: int, images: list[np.ndarray], workdir: Path):
    """Raw head outputs (batch 1 each) of ``model`` on ``images``; and its DecodeSpec at ``size``."""
    import onnxruntime as ort

    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.names import default_names
    from yolov3_trt.preprocess import preprocess

    path = workdir / "model.onnx"
    export_onnx(model, path, default_names(model.num_classes), size=(size, size))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = [session.run(None, {"images": preprocess([image], (size, size))[0]}) for image in images]
    return outs, model.decode_spec((size, size))


def same(a, b) -> bool:
    return all(np.array_equal(x[2], y[2]) and np.array_equal(x[1], y[1]) and np.allclose(x[0], y[0], atol=1e-4)
               for x, y in zip(a, b))


def build_parser():
    """The flags (yolov3_trt.cli.flags: one meaning, one validator, one help line in every tool)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/postprocess.py", description=__doc__.split("\n")[0])
    add_flag(p, "--cfg", default="yolov3")
    add_flag(p, "--size", default=(416, 416), default_text="416")
    add_flag(p, "--confs", default=[0.001, 0.25], default_text="0.001,0.25")
    add_flag(p, "--runs", default=20)
    add_flag(p, "--warmup", default=2)
    add_flag(p, "--photos", default=str(PHOTOS), default_text="the Darknet samples")
    add_flag(p, "--no-trained")
    add_flag(p, "--output", default="runs/benchmarks/postprocess", metavar="DIR", help="folder for the results")
    return p

def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.size[0] != args.size[1]:
        p.error(f"argument --size: {args.size[0]}x{args.size[1]}: the benchmark sizes are square, give N")
    args.size = args.size[0]

    from yolov3_trt.fileio import atomic_path, atomic_write_json
    from yolov3_trt.plugin.host import load_library, postprocess_host
    from yolov3_trt.plugin.sources import PluginError
    from yolov3_trt.postprocess import DEFAULT_NMS, postprocess
    from yolov3_trt.preprocess import read_image

    try:
        load_library()
    except PluginError as err:  # not built: say how, before exporting and running anything
        raise SystemExit(f"error: {err}") from None

    photos = sorted(Path(args.photos).glob("*.jpg"))
    if photos:
        images = [read_image(f) for f in photos]
    else:  # no photos here: random noise images, said in the results
        images = [np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(3)]
    confs = list(args.confs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = [(f"{args.cfg} {kind}", lambda gain=gain: random_model(args.cfg, gain, Path(tmp)), images)
                for kind, gain in GAINS.items()]
        if TRAINED.is_file() and not args.no_trained:
            from yolov3_trt.model.checkpoint import load_checkpoint
            trained_images = [read_image(f) for f in sorted(TRAINED_IMAGES.glob("*.png"))[:len(images)]]
            sets.append(("trained (shapes, 6 classes)", lambda: load_checkpoint(TRAINED)[0].eval(), trained_images))
        for kind, make_model, inputs in sets:
            outputs, decode = head_outputs(make_model(), args.size, inputs, Path(tmp))
            for conf in tqdm(confs, desc=kind):
                nms = dataclasses.replace(DEFAULT_NMS, conf=conf)
                times = {"numpy": [], "host library": []}
                detections = 0
                for out in outputs:
                    ref = postprocess(out, decode, nms)
                    got = postprocess_host(out, decode, nms)
                    if not same(ref, got):
                        raise SystemExit(f"host build and numpy differ ({kind}, conf {conf})")
                    detections += len(ref[0][0])
                    times["numpy"] += timed(lambda: postprocess(out, decode, nms), args.warmup, args.runs)
                    times["host library"] += timed(lambda: postprocess_host(out, decode, nms), args.warmup, args.runs)
                for name, ms in times.items():
                    rows.append({"heads": kind, "conf": conf, "postprocessor": name, "p50_ms": float(np.median(ms)),
                                 "p90_ms": float(np.percentile(ms, 90)), "mean_detections": detections / len(outputs)})
    result = {"command": "python benchmarks/postprocess.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "cfg": args.cfg, "size": args.size, "batch": 1, "images": [f.name for f in photos] or "random noise",
              "machine": machine_info(), "rows": rows}
    out = Path(args.output)
    atomic_write_json(out / "postprocess.json", result)
    print(f"{'heads':<30}{'conf':>7}  {'post-processor':<14}{'p50 ms':>9}{'p90 ms':>9}{'dets':>7}")
    for r in rows:
        print(f"{r['heads']:<30}{r['conf']:>7g}  {r['postprocessor']:<14}{r['p50_ms']:>9.3f}{r['p90_ms']:>9.3f}"
              f"{r['mean_detections']:>7.1f}")
    with atomic_path(out / "postprocess.png") as tmp:
        plot(rows, result, tmp)
    return 0


def plot(rows, result, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(r["heads"] for r in rows))
    groups = sorted({(r["heads"], r["conf"]) for r in rows}, key=lambda g: (kinds.index(g[0]), g[1]))
    names = ["numpy", "host library"]
    fig, ax = plt.subplots(figsize=(10, 5.2))
    x = np.arange(len(groups))
    for i, name in enumerate(names):
        values = [next(r["p50_ms"] for r in rows if (r["heads"], r["conf"]) == g and r["postprocessor"] == name)
                  for g in groups]
        bars = ax.bar(x + (i - 0.5) * 0.38, values, 0.38, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    labels = [h.replace(", ", "\n").replace(" (", "\n(").replace(" random", "\nrandom") for h, _ in groups]
    ax.set_xticks(x, [f"{label}\nconf {c:g}" for label, (_, c) in zip(labels, groups)], fontsize=8)
    ax.set_ylabel("post-processing, ms (median, batch 1)")
    ax.set_yscale("log")
    ax.set_title(f"decode + NMS on the CPU at {result['size']}, one thread\n{result['machine']['cpu']}, "
                 f"{result['machine']['cores']} cores (shared)",
                 fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
