"""Why OpenVINO drifts on the INT8 file placed for TensorRT: ``python benchmarks/openvino_qdq_drift.py FP32 INT8 DIR``.

FP32: the FP32 ONNX; INT8: its ``quantize --int8 --target tensorrt`` file (ModelOpt Q/DQ:
symmetric int8 activations, zero point 0); DIR: a folder of photos. Each experiment edits the
INT8 graph in memory (or compiles it differently) and runs it on ONNX Runtime's CPU provider and
on OpenVINO's CPU plugin (compiled as the backend compiles: ``openvino_backend.compile_config``).
Printed per experiment, per head: the relative RMS error (rms(a - b) / rms(b), over all photos)
of OpenVINO vs ONNX Runtime on the same graph, of each runtime vs FP32, and of the edited
graph's ONNX Runtime heads vs the unedited file's (0 where the edit keeps the numbers).

A minimal graph (two inputs -> Concat -> int8 Q/DQ -> Conv with identity weights) shows the
cause in isolation: OpenVINO's output lands on a 1.0 grid in real units whatever the scale, and
the same numbers as uint8 (zero point 128) come out exact. Then the network-only speed (batch 1,
--threads, median of --runs) of the file as read and of the backend's fix
(``openvino_backend.uint8_activations``). Writes the JSON to --output atomically.

The committed result (docs/benchmarks/cpu_runtimes/drift/) ran on Darknet's trained yolov3-tiny:
``python -m yolov3_trt.export --weights yolov3-tiny --size 416 --output fp32.onnx``, then
``python -m yolov3_trt.quantize fp32.onnx --int8 --target tensorrt --calib IMAGES`` with IMAGES
Darknet's six sample photos, which are also the photos run.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks" / "cpu_runtimes" / "drift" / "openvino_qdq_drift.json"


def build_parser():
    """The flags (yolov3_trt.cli.flags for the shared ones)."""
    from yolov3_trt.cli.common import ArgumentParser
    from yolov3_trt.cli.flags import add_flag

    p = ArgumentParser(prog="benchmarks/openvino_qdq_drift.py", description=__doc__.split("\n")[0])
    p.add_argument("fp32", type=Path, help="the FP32 ONNX (raw heads)")
    p.add_argument("int8", type=Path, help="its INT8 ONNX placed for TensorRT (quantize --int8 --target tensorrt)")
    p.add_argument("photos", type=Path, help="folder of images to run (*.jpg, *.png)")
    add_flag(p, "--limit", default=6)
    add_flag(p, "--threads", default=2)
    add_flag(p, "--warmup", default=5)
    add_flag(p, "--runs", default=20)
    add_flag(p, "--output", default=str(OUTPUT), help="the JSON written (atomically)")
    return p


# ---- graph edits (ONNX ModelProto in, edited copy out) ----

def _index(model):
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return constants, producer, consumers


def drop_activation_qdq(model, feeds: str):
    """Remove the activation Q -> DQ pairs whose DQ feeds an op of type ``feeds``."""
    model = copy.deepcopy(model)
    constants, producer, consumers = _index(model)
    rename, remove = {}, []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] not in constants:
            quantize = producer[node.input[0]]
            if any(c.op_type == feeds for c in consumers.get(node.output[0], [])):
                remove += [quantize, node]
                rename[node.output[0]] = quantize.input[0]
    for node in remove:
        model.graph.node.remove(node)
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = rename.get(name, name)
    return model


def concat_inputs_bypass_dq(model):
    """Feed each Concat input's float value (the Q's input) instead of its DQ(Q(x))."""
    model = copy.deepcopy(model)
    _, producer, _ = _index(model)
    for node in model.graph.node:
        if node.op_type == "Concat":
            for k, name in enumerate(node.input):
                dq = producer.get(name)
                q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
                if q is not None and q.op_type == "QuantizeLinear":
                    node.input[k] = q.input[0]
    return model


def uint8_concat_output_only(model):
    """The backend's uint8 rewrite, limited to the Q/DQ pairs on Concat outputs."""
    import onnx
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    _, producer, consumers = _index(model)
    inits = {i.name: i for i in model.graph.initializer}
    for node in list(model.graph.node):
        source = producer.get(node.input[0]) if node.op_type == "QuantizeLinear" else None
        if source is None or source.op_type != "Concat":
            continue
        zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.int16) + 128
        name = node.input[2] + "_uint8_concat"
        model.graph.initializer.append(numpy_helper.from_array(zero.astype(np.uint8), name))
        for n in (node, *consumers[node.output[0]]):
            n.input[2] = name
        for info in model.graph.value_info:
            if info.name == node.output[0]:
                info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    return model


# ---- runners ----

def relative_rms(got: list[list[np.ndarray]], expected: list[list[np.ndarray]]) -> list[float]:
    """Per head: rms(got - expected) / rms(expected) over all photos."""
    out = []
    for head in range(len(expected[0])):
        a = np.concatenate([g[head].astype(np.float64).ravel() for g in got])
        b = np.concatenate([e[head].astype(np.float64).ravel() for e in expected])
        out.append(round(float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b ** 2))), 5))
    return out


def run_ort(model_bytes: bytes, blobs, threads: int) -> tuple[list, str]:
    """ONNX Runtime's heads; its default graph optimisation, or basic where a fusion it offers
    fails (uint8 Q/DQ around Concat with FP16 scales becomes a QLinearConcat it cannot run)."""
    import onnxruntime as ort

    for level in ("all", "basic"):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        if level == "basic":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception:
            if level == "basic":
                raise
            continue
        name = session.get_inputs()[0].name
        return [session.run(None, {name: b}) for b in blobs], level
    raise AssertionError("unreachable")


def compile_ov(core, model_bytes: bytes, threads: int, extra: dict | None = None):
    from yolov3_trt.runtime.backends.openvino_backend import compile_config

    return core.compile_model(core.read_model(model_bytes), "CPU", {**compile_config("f32", threads), **(extra or {})})


def run_ov(core, model_bytes: bytes, blobs, threads: int, extra: dict | None = None) -> list:
    compiled = compile_ov(core, model_bytes, threads, extra)
    request = compiled.create_infer_request()
    return [[np.array(request.infer({0: b})[o]) for o in compiled.outputs] for b in blobs]


def minimal_case(core, scales=(0.01, 0.1, 0.5)) -> list[dict]:
    """Concat(a, x) -> Q/DQ (scale s, int8 zp 0 or uint8 zp 128) -> 1x1 Conv with identity weights
    (int8, scale 1/127: exact), so the output should equal Q/DQ(concat) exactly."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    channels, side = 8, 6
    rows = []
    for scale in scales:
        x = np.linspace(-100 * scale, 100 * scale, channels * side * side, dtype=np.float32)
        x = x.reshape(1, channels, side, side)
        feed = {"a": x[:, ::-1].copy(), "x": x}
        for kind, zero in (("int8", np.int8(0)), ("uint8", np.uint8(128))):
            n = 2 * channels
            inits = [nh.from_array(np.array(scale, np.float32), "s"), nh.from_array(np.array(zero), "z"),
                     nh.from_array(np.eye(n, dtype=np.float32).reshape(n, n, 1, 1), "w"),
                     nh.from_array(np.full(n, 1 / 127, np.float32), "ws"), nh.from_array(np.zeros(n, np.int8), "wz")]
            nodes = [helper.make_node("Concat", ["a", "x"], ["c"], axis=1),
                     helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
                     helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"]),
                     helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
                     helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                     helper.make_node("Conv", ["cd", "wd"], ["y"])]
            shape = [1, channels, side, side]
            inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, shape) for k in ("a", "x")]
            output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n, side, side])
            graph = helper.make_graph(nodes, "concat_qdq_conv", inputs, [output], inits)
            data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()
            onnx.checker.check_model(onnx.load_from_string(data))
            expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feed)[0]
            compiled = core.compile_model(core.read_model(data), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            got = np.array(compiled.create_infer_request().infer(feed)[compiled.outputs[0]])
            steps = np.diff(np.unique(got))
            rows.append({"scale": scale, "activations": kind, "max_abs_error": float(np.abs(got - expected).max()),
                         "openvino_smallest_step": float(steps.min()) if len(steps) else None})
    return rows


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import onnx
    import openvino as ov

    from yolov3_trt.fileio import atomic_write_text
    from yolov3_trt.preprocess import preprocess, read_image
    from yolov3_trt.runtime.backends.openvino_backend import uint8_activations

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:args.limit]
    if not photos:
        raise SystemExit(f"{args.photos}: no .jpg/.png images")
    fp32 = onnx.load(str(args.fp32))
    dims = fp32.graph.input[0].type.tensor_type.shape.dim
    size = (int(dims[3].dim_value), int(dims[2].dim_value))
    blobs = [preprocess([read_image(p)], size)[0] for p in photos]
    core = ov.Core()
    reference, _ = run_ort(fp32.SerializeToString(), blobs, args.threads)
    int8 = onnx.load(str(args.int8))
    as_file, _ = run_ort(int8.SerializeToString(), blobs, args.threads)
    fixed_bytes, changed = uint8_activations(args.int8)
    no_lpt = {"LP_TRANSFORMS_MODE": False}   # the CPU plugin's switch for its low-precision transformations
    experiments = [
        ("as read (the unfixed path)", int8.SerializeToString(), None),
        ("low-precision transformations off", int8.SerializeToString(), no_lpt),
        ("no Q/DQ before Resize", drop_activation_qdq(int8, "Resize").SerializeToString(), None),
        ("no Q/DQ before MaxPool", drop_activation_qdq(int8, "MaxPool").SerializeToString(), None),
        ("float (not DQ) into Concat, no Q/DQ before Resize",
         concat_inputs_bypass_dq(drop_activation_qdq(int8, "Resize")).SerializeToString(), None),
        ("uint8 zp 128: Concat-output Q/DQ only", uint8_concat_output_only(int8).SerializeToString(), None),
        (f"uint8 zp+128: all {changed} activation Q/DQ (the backend's fix)", fixed_bytes, None),
    ]
    rows = []
    for label, data, extra in experiments:
        ort_heads, level = run_ort(data, blobs, args.threads)
        ov_heads = run_ov(core, data, blobs, args.threads, extra)
        row = {"experiment": label, "openvino_config_extra": extra or {}, "onnxruntime_optimization": level,
               "openvino_vs_onnxruntime": relative_rms(ov_heads, ort_heads),
               "openvino_vs_fp32": relative_rms(ov_heads, reference),
               "onnxruntime_vs_fp32": relative_rms(ort_heads, reference),
               "onnxruntime_edit_vs_file": relative_rms(ort_heads, as_file)}
        rows.append(row)
        print(f"{label}: OpenVINO vs ONNX Runtime {row['openvino_vs_onnxruntime']}, vs FP32 "
              f"{row['openvino_vs_fp32']}; ONNX Runtime vs FP32 {row['onnxruntime_vs_fp32']}, "
              f"edit vs file {row['onnxruntime_edit_vs_file']}", flush=True)
    minimal = minimal_case(core)
    for row in minimal:
        print(f"minimal Concat -> Q/DQ -> Conv, scale {row['scale']}, {row['activations']}: max |error| "
              f"{row['max_abs_error']:.4g}, OpenVINO's smallest output step {row['openvino_smallest_step']}")
    requests = {"as read": compile_ov(core, int8.SerializeToString(), args.threads).create_infer_request(),
                "uint8 fix": compile_ov(core, fixed_bytes, args.threads).create_infer_request()}
    times: dict[str, list[float]] = {k: [] for k in requests}
    for name, request in requests.items():
        timed(lambda r=request: r.infer({0: blobs[0]}), args.warmup, 0)
    for _ in range(args.runs):   # interleaved, so a busy moment of the machine hits both alike
        for name, request in requests.items():
            times[name] += timed(lambda r=request: r.infer({0: blobs[0]}), 0, 1)
    speed = {name: {"median_ms": round(float(np.median(t)), 3), "min_ms": round(float(np.min(t)), 3)}
             for name, t in times.items()}
    for name, s in speed.items():
        print(f"speed, network only, batch 1, {args.threads} threads, {name}: median {s['median_ms']:.2f} ms "
              f"(min {s['min_ms']:.2f}) of {args.runs}")
    report = {"command": "python benchmarks/" + " ".join([Path(__file__).name, *(argv or sys.argv[1:])]),
              "machine": machine_info(), "fp32": str(args.fp32), "int8": str(args.int8),
              "photos": [p.name for p in photos], "input_size": list(size),
              "error": "relative RMS per head: rms(a - b) / rms(b) over all photos",
              "experiments": rows, "minimal_concat_qdq_conv": minimal,
              "speed": {"threads": args.threads, "runs": args.runs, "batch": 1, **speed}}
    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    from yolov3_trt.cli.common import run

    sys.exit(run(main))
