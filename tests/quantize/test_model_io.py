"""quantize/model_io.py: reading and checking the source ONNX, carrying its metadata, the tail."""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from helpers import random_model
from onnx import TensorProto, helper

from yolov3_trt.errors import FileError, QuantizeError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.metadata import PREFIX
from yolov3_trt.quantize import model_io
from yolov3_trt.quantize.model_io import (
    finish,
    load_source,
    prepare,
    require_modelopt,
    restore_tail,
)

NAMES = ["a", "b"]
SIZE = (96, 64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_io")
    model = random_model(folder, seed=2, num_classes=len(NAMES))
    export_onnx(model, folder / "raw.onnx", NAMES, size=SIZE)
    export_onnx(model, folder / "e2e.onnx", NAMES, flavour="end2end", size=SIZE, conf=0.2, iou=0.4, max_det=7)
    return folder


def edited(files, tmp_path, change) -> str:
    model = onnx.load(files / "raw.onnx")
    change(model)
    path = tmp_path / "edited.onnx"
    onnx.save(model, path)
    return path


def test_load_source_reads_the_facts(files) -> None:
    source = load_source(files / "raw.onnx")
    assert source.size == SIZE and source.metadata.names == tuple(NAMES)
    assert source.input_shape[1:] == (3, SIZE[1], SIZE[0]) and source.input_name == "images"
    assert source.opset >= model_io.MIN_OPSET
    assert source.props[PREFIX + "flavour"] == "raw"
    assert load_source(files / "raw.onnx", size=SIZE).size == SIZE


def set_prop(model, key, value) -> None:
    model.metadata_props.add(key=PREFIX + key, value=value)


def float16_input(model) -> None:
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16


def grey_input(model) -> None:
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1


def wrong_height(model) -> None:
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = SIZE[1] + 32


def second_input(model) -> None:
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))


def no_metadata(model) -> None:
    del model.metadata_props[:]


@pytest.mark.parametrize("change, words", [
    (no_metadata, "has no yolov3_trt metadata"),  # a FileError from ModelMetadata, QuantizeError's base
    (second_input, "expected one image input, the model has 2"),
    (float16_input, "is not float32: quantize the FP32 export"),
    (grey_input, "expected [N, 3, H, W]"),
    (wrong_height, f"but the metadata says {SIZE[0]}x{SIZE[1]}"),
    (lambda m: set_prop(m, "precision", "int8"), "is already a int8 model"),
])
def test_load_source_refuses_in_one_line(files, tmp_path, change, words) -> None:
    path = edited(files, tmp_path, change)
    with pytest.raises(FileError) as err:
        load_source(path)
    assert isinstance(err.value, QuantizeError) or change is no_metadata
    assert words in str(err.value) and "edited.onnx" in str(err.value) and "\n" not in str(err.value)


def test_load_source_refuses_missing_unreadable_and_other_sizes(files, tmp_path) -> None:
    with pytest.raises(QuantizeError, match="no such ONNX file"):
        load_source(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(QuantizeError, match="not a readable ONNX file"):
        load_source(tmp_path / "junk.onnx")
    with pytest.raises(QuantizeError, match=f"the model's input is {SIZE[0]}x{SIZE[1]}, not 128x128"):
        load_source(files / "raw.onnx", size=(128, 128))


def test_finish_carries_metadata_and_adds_ours(files, tmp_path) -> None:
    source = load_source(files / "raw.onnx")
    model = onnx.load(files / "raw.onnx")
    del model.metadata_props[:]
    finish(model, source, tmp_path / "out.onnx", precision="int8", calibration={"method": "entropy", "images": 4})
    props = {p.key: p.value for p in onnx.load(tmp_path / "out.onnx").metadata_props}
    assert {k: v for k, v in props.items() if k in source.props} == source.props
    assert props[PREFIX + "precision"] == "int8"
    assert json.loads(props[PREFIX + "calibration"]) == {"method": "entropy", "images": 4}


def test_prepare_strips_the_tail_and_restore_puts_it_back(files, tmp_path) -> None:
    source = load_source(files / "e2e.onnx")
    prepared = onnx.load(prepare(source, tmp_path))
    raw_outputs = [o.name for o in onnx.load(files / "raw.onnx").graph.output]
    assert [o.name for o in prepared.graph.output] == raw_outputs
    assert not any(n.op_type == "NonMaxSuppression" for n in prepared.graph.node)
    restore_tail(prepared, source)
    assert [o.name for o in prepared.graph.output] == [o.name for o in onnx.load(files / "e2e.onnx").graph.output]
    assert any(n.op_type == "NonMaxSuppression" for n in prepared.graph.node)
    (tmp_path / "raw").mkdir()
    raw_prepared = onnx.load(prepare(load_source(files / "raw.onnx"), tmp_path / "raw"))
    assert [o.name for o in raw_prepared.graph.output] == raw_outputs  # a raw graph keeps its heads


def test_restore_tail_bakes_the_source_thresholds(files, tmp_path) -> None:
    import onnxruntime as ort

    source = load_source(files / "e2e.onnx")
    prepared = onnx.load(prepare(source, tmp_path))
    restore_tail(prepared, source)
    onnx.save(prepared, tmp_path / "restored.onnx")
    blob = np.random.default_rng(0).random((1, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"images": blob})
            for p in (files / "e2e.onnx", tmp_path / "restored.onnx")]
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert runs[1][1].shape[1] == 7  # max_det as exported


def test_require_modelopt_names_the_file_and_the_extra(monkeypatch, tmp_path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modelopt" else real(name, *a))
    with pytest.raises(QuantizeError, match=r"model.onnx: FP16 and INT8 for TensorRT need NVIDIA ModelOpt: "
                                            r"pip install -e \.\[quantize\]"):
        require_modelopt(tmp_path / "model.onnx")


def test_route_modelopt_logging_drops_only_its_console_handler() -> None:
    log = logging.getLogger("modelopt.onnx")
    console, kept = logging.StreamHandler(), logging.NullHandler()
    log.addHandler(console)
    log.addHandler(kept)
    try:
        model_io.route_modelopt_logging()
        assert console not in log.handlers and kept in log.handlers
    finally:
        log.removeHandler(kept)
        log.removeHandler(console)
