"""Triton model repository: config.pbtxt parsed by Triton's own protobuf, tensors equal to the model's."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import random_model

from yolov3_trt.cli.common import run
from yolov3_trt.errors import FileError, YoloV3TrtError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.fileio import file_sha256
from yolov3_trt.tensorrt.sidecar import EngineInfo, write_sidecar
from yolov3_trt.triton.__main__ import main
from yolov3_trt.triton.repository import TritonOptions, validate_config, write_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient[grpc] (in the dev extra) provides Triton's protobuf")
SIZE = (96, 64)
NAMES = [f"c{i}" for i in range(80)]


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton")
    model = random_model(folder, seed=3, name="tiny.weights")
    export_onnx(model, folder / "raw.onnx", NAMES, size=SIZE)
    export_onnx(model, folder / "e2e.onnx", NAMES, flavour="end2end", size=SIZE, max_det=50)
    export_onnx(model, folder / "fixed.onnx", NAMES, size=SIZE, batch=2)
    export_onnx(model, folder / "plugin.onnx", NAMES, flavour="plugin", size=SIZE)
    return folder


@pytest.mark.parametrize("name", ["raw", "e2e"])
def test_onnx_repository_matches_what_onnxruntime_outputs(onnx_models, tmp_path, name):
    source = onnx_models / f"{name}.onnx"
    config_path = write_repository(source, tmp_path / "repo", TritonOptions(name="yolo", instances=2, kind="cpu"))
    config = validate_config(config_path.read_text(), config_path)
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert (tmp_path / "repo" / "yolo" / "1" / "model.onnx").read_bytes() == source.read_bytes()
    assert (tmp_path / "repo" / "yolo" / "labels.txt").read_text().split() == NAMES
    assert config.parameters["yolov3_trt.names"].string_value.startswith('["c0"')
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    (inp,) = config.input
    assert inp.name == session.get_inputs()[0].name and list(inp.dims) == [3, SIZE[1], SIZE[0]]
    outputs = session.run(None, {inp.name: np.zeros((3, 3, SIZE[1], SIZE[0]), np.float32)})
    kinds = {np.dtype(np.float32): model_config_pb2.TYPE_FP32, np.dtype(np.int32): model_config_pb2.TYPE_INT32}
    assert [o.name for o in config.output] == [o.name for o in session.get_outputs()]
    for spec, array in zip(config.output, outputs):
        assert [3, *spec.dims] == list(array.shape) and spec.data_type == kinds[array.dtype]
    if name == "e2e":
        assert [o.label_filename for o in config.output] == ["", "", "", "labels.txt"]


def _engine(folder, onnx_path, name="yolo", plan=b"plan bytes", **changes):
    """An engine file and the sidecar python -m yolov3_trt.build writes for it, with ``changes`` applied."""
    import dataclasses

    import onnx

    from yolov3_trt.metadata import ModelMetadata

    engine = folder / f"{name}.engine"
    engine.write_bytes(plan)
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    meta = ModelMetadata.from_props(props, onnx_path)
    info = EngineInfo(tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability=(8, 7), precision="int8",
                      input_size=meta.input_size, batch=(1, 4, 16), flavour=meta.flavour, names=meta.names,
                      anchors=meta.anchors, engine_sha256=file_sha256(engine), model=props)
    write_sidecar(engine, dataclasses.replace(info, **changes))
    return engine


def test_engine_repository_from_the_sidecar(onnx_models, tmp_path):
    engine = _engine(tmp_path, onnx_models / "e2e.onnx")
    assert run(main, ["--model", str(engine), "--output", str(tmp_path / "repo"), "--preferred-batch", "4,16"]) == 0
    config_path = tmp_path / "repo" / "yolo" / "config.pbtxt"
    config = validate_config(config_path.read_text(), config_path)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert [list(o.dims) for o in config.output] == [[1], [50, 4], [50], [50]]
    assert (tmp_path / "repo" / "yolo" / "1" / "model.plan").read_bytes() == b"plan bytes"
    with pytest.raises(YoloV3TrtError, match="exceeds the engine's profile maximum 16"):
        write_repository(engine, tmp_path / "r2", TritonOptions(name="y", max_batch=32))
    with pytest.raises(YoloV3TrtError, match="only on a GPU instance"):
        write_repository(engine, tmp_path / "r2", TritonOptions(name="y", kind="cpu"))


def test_bad_inputs_exit_2_with_one_line(onnx_models, tmp_path, capsys):
    cases = [(["--model", str(onnx_models / "fixed.onnx")], "has a fixed batch of 2"),
             (["--model", str(tmp_path / "missing.onnx")], "no such model file"),
             (["--model", str(onnx_models / "plugin.onnx")], "is a plugin graph, which only TensorRT runs"),
             (["--model", str(onnx_models / "raw.onnx"), "--name", "a b"], "use letters, digits"),
             (["--model", str(onnx_models / "raw.onnx"), "--max-batch", "2", "--preferred-batch", "4"],
              "preferred batch size exceeds max_batch_size 2")]
    for argv, message in cases:
        assert run(main, [*argv, "--output", str(tmp_path / "repo")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "repo" / "fixed").exists()
    (tmp_path / "a-file").write_text("")  # an output "folder" that is a file
    assert run(main, ["--model", str(onnx_models / "raw.onnx"), "--output", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a-file" in err and err.count("\n") == 1, err


SIDECAR_CASES = {  # what is wrong -> (how the engine and sidecar are made, words of the one line)
    "garbage plan, sidecar's hash": (dict(plan=b"garbage", engine_sha256="ab" * 32),
                                     "yolo.engine: sha256 "),
    "no hash in the sidecar": (dict(engine_sha256=""), "yolo.engine.json: has no engine_sha256"),
    "names": (dict(names=tuple(f"d{i}" for i in range(80))), "names (80 vs 80 in the model metadata, first "
                                                             "difference 'd0')"),
    "class count": (dict(names=("person",)), "names (1 vs 80 in the model metadata)"),
    "input size": (dict(input_size=(416, 416)), "input_size (416x416 vs 96x64)"),
    "flavour": (dict(flavour="raw"), "flavour (raw vs end2end)"),
    "anchors": (dict(anchors=(((1.0, 2.0),),)), "disagrees with the model metadata it carries: anchors"),
}


@pytest.mark.parametrize("case", SIDECAR_CASES)
def test_engine_that_does_not_match_its_sidecar_is_refused(onnx_models, tmp_path, capsys, case):
    changes, words = SIDECAR_CASES[case]
    engine = _engine(tmp_path, onnx_models / "e2e.onnx", **changes)
    assert run(main, ["--model", str(engine), "--output", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert "Traceback" not in err and "yolo.engine" in err
    assert not (tmp_path / "repo").exists()  # refused before anything is written


def test_validate_config_rejects_what_triton_would():
    with pytest.raises(FileError, match="not a valid Triton model config"):
        validate_config('name: "x" max_batch_sise: 4\n', "bad.pbtxt")
    with pytest.raises(FileError, match="max_batch_size must be >= 1"):
        validate_config('name: "x" platform: "onnxruntime_onnx"\n', "zero.pbtxt")


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_openvino_model_for_cpu_instances(onnx_models, tmp_path, precision):
    source = onnx_models / "raw.onnx"
    assert run(main, ["--model", str(source), "--output", str(tmp_path / "repo"), "--name", "yolo", "--kind", "cpu",
                      "--backend", "openvino", "--openvino-precision", precision, "--threads", "2"]) == 0
    config_path = tmp_path / "repo" / "yolo" / "config.pbtxt"
    config = validate_config(config_path.read_text(), config_path)
    assert config.backend == "openvino" and config.platform == "" and config.default_model_filename == "model.onnx"
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    params = {k: v.string_value for k, v in config.parameters.items()}
    expected = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "2"}
    if precision == "bf16":
        expected["HINT_BF16"] = "YES"
    assert {k: v for k, v in params.items() if not k.startswith("yolov3_trt.")} == expected
    assert params["yolov3_trt.flavour"] == "raw"  # the metadata rides along: OpenVINO reads only its own keys
    assert (tmp_path / "repo" / "yolo" / "1" / "model.onnx").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("args, words", [
    (["--backend", "openvino"], "runs on CPU instances: add --kind cpu"),
    (["--kind", "cpu", "--openvino-precision", "bf16"], "is the openvino backend's: add --backend openvino"),
    (["--kind", "cpu", "--backend", "torch"], "Triton serves an engine on tensorrt and an ONNX on onnxruntime or"),
    (["--backend", "tensorrt"], "serves engines: build one"),
])
def test_openvino_and_backend_refusals(onnx_models, tmp_path, capsys, args, words):
    assert run(main, ["--model", str(onnx_models / "raw.onnx"), "--output", str(tmp_path / "repo"), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "repo").exists()


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None, reason="INT8 for TensorRT needs nvidia-modelopt")
def test_openvino_gets_the_tensorrt_int8_file_with_uint8_activations(onnx_models, tmp_path):
    """Triton's openvino backend reads the file as it is: it gets the uint8 form the Detector's
    openvino backend reads (the same numbers; OpenVINO computes signed int8 around Concat wrongly)."""
    from helpers import DARKNET

    from yolov3_trt.quantize import quantize_int8

    source = quantize_int8(onnx_models / "raw.onnx", tmp_path / "int8-trt.onnx", DARKNET / "images", num_images=3,
                           progress=False)
    assert run(main, ["--model", str(source), "--output", str(tmp_path / "repo"), "--name", "yolo", "--kind", "cpu",
                      "--backend", "openvino"]) == 0
    served = tmp_path / "repo" / "yolo" / "1" / "model.onnx"
    model = onnx.load(str(served))
    initializers = {i.name: i.data_type for i in model.graph.initializer}
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in initializers]
    assert activation_q and all(initializers[n.input[2]] == onnx.TensorProto.UINT8 for n in activation_q)
    x = np.random.default_rng(0).random((1, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    def run_on(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})

    for a, b in zip(run_on(source), run_on(served)):
        np.testing.assert_array_equal(a, b)
    # the ONNX Runtime repository of the same file gets it as it is
    assert run(main, ["--model", str(source), "--output", str(tmp_path / "ort"), "--name", "yolo",
                      "--kind", "cpu"]) == 0
    assert (tmp_path / "ort" / "yolo" / "1" / "model.onnx").read_bytes() == source.read_bytes()
