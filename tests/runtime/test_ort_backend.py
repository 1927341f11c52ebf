"""The ONNX Runtime backend on its own: metadata, input checks, threads, close."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from helpers import random_model
from onnx import TensorProto, helper

from yolov3_trt.errors import FileError, YoloV3TrtError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.runtime.backends.ort_backend import (
    OnnxRuntimeBackend,
    providers,
    session_options,
)

SIZE = (96, 64)  # width, height


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort")
    model = random_model(folder, seed=3)
    export_onnx(model, folder / "dynamic.onnx", COCO_NAMES, size=SIZE)
    export_onnx(model, folder / "batch2.onnx", COCO_NAMES, size=SIZE, batch=2)
    props = {p.key: p.value for p in onnx.load(folder / "dynamic.onnx").metadata_props}
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE[1], SIZE[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, SIZE[1], SIZE[0]])]))
    onnx.save(plain, folder / "no_metadata.onnx")
    two = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, SIZE[1], SIZE[0]]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, SIZE[1], SIZE[0]])]))
    helper.set_model_props(two, props)
    onnx.save(two, folder / "two_inputs.onnx")
    (folder / "garbage.onnx").write_bytes(b"not a protobuf at all")
    return folder


def blob(batch: int = 1) -> np.ndarray:
    return np.random.default_rng(0).random((batch, 3, SIZE[1], SIZE[0]), dtype=np.float32)


def test_loads_metadata_batch_and_runs(files) -> None:
    backend = OnnxRuntimeBackend(files / "dynamic.onnx", device="cpu")
    assert backend.metadata.input_size == SIZE and backend.metadata.flavour == "raw"
    assert backend.metadata.names == tuple(COCO_NAMES)
    assert backend.max_batch is None and backend.description == "onnxruntime (CPUExecutionProvider)"
    outputs = backend.infer(blob(3))
    assert [o.shape for o in outputs] == [(3, 255, SIZE[1] // 32, SIZE[0] // 32),
                                          (3, 255, SIZE[1] // 16, SIZE[0] // 16)]
    assert len(backend.output_names) == 2
    assert OnnxRuntimeBackend(files / "batch2.onnx").max_batch == 2


@pytest.mark.parametrize("name, words", [
    ("no_metadata.onnx", "has no yolov3_trt metadata"),
    ("two_inputs.onnx", "expected one input, the model has 2"),
    ("garbage.onnx", "not a loadable ONNX model"),
])
def test_refuses_files_in_one_line(files, name, words) -> None:
    with pytest.raises(FileError) as err:
        OnnxRuntimeBackend(files / name)
    assert words in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad, words", [
    (blob().astype(np.float64), "input must be float32, got float64"),
    ([[0.0]], "input must be float32, got list"),
    (blob()[0], "got rank 3"),
    (np.zeros((1, 3, SIZE[1], SIZE[0] + 32), np.float32), f"input must be (B, 3, {SIZE[1]}, {SIZE[0]})"),
    (blob(3), "batch 3 exceeds the model's 2"),
])
def test_input_checks(files, bad, words) -> None:
    backend = OnnxRuntimeBackend(files / "batch2.onnx")
    with pytest.raises(YoloV3TrtError) as err:
        backend.infer(bad)
    assert words in str(err.value) and "batch2.onnx" in str(err.value)


def test_non_contiguous_input_is_accepted(files) -> None:
    backend = OnnxRuntimeBackend(files / "dynamic.onnx")
    wide = np.random.default_rng(1).random((1, 3, SIZE[1], SIZE[0] * 2), dtype=np.float32)
    view = wide[:, :, :, ::2]
    np.testing.assert_array_equal(backend.infer(view)[0], backend.infer(np.ascontiguousarray(view))[0])


def test_threads_and_options_reach_the_session(files) -> None:
    backend = OnnxRuntimeBackend(files / "dynamic.onnx", threads=2, optimization="basic", arena=False)
    options = backend.session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level.name == "ORT_ENABLE_BASIC"
    assert not options.enable_cpu_mem_arena and not options.enable_mem_pattern
    assert session_options().intra_op_num_threads == 0  # one per core
    assert providers("cpu") == ["CPUExecutionProvider"]


def test_close_frees_the_session_and_refuses_to_run(files) -> None:
    backend = OnnxRuntimeBackend(files / "dynamic.onnx")
    backend.close()
    assert backend.closed and backend.session is None
    with pytest.raises(YoloV3TrtError, match="the onnxruntime backend is closed"):
        backend.infer(blob())
    backend.close()  # idempotent
