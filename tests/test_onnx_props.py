"""yolov3_trt.onnx_props: metadata_props read without onnx, equal to onnx's own reading."""
from __future__ import annotations

import pytest

from yolov3_trt.errors import FileError
from yolov3_trt.onnx_props import read_metadata_props

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _model(props: dict[str, str], initializer_values: int = 1000):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [initializer_values], [0.5] * initializer_values)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [initializer_values])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [initializer_values])], [weight])
    model = helper.make_model(graph, producer_name="p", doc_string="d" * 300)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def test_equals_onnx_on_an_exported_model(tmp_path):
    from helpers import random_model

    from yolov3_trt.export.onnx_export import export_onnx

    model = random_model(tmp_path)
    export_onnx(model, tmp_path / "m.onnx", [f"c{i}" for i in range(model.num_classes)], size=(96, 64))
    expected = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert read_metadata_props(tmp_path / "m.onnx") == expected and "yolov3_trt.format" in expected


def test_unicode_empty_values_duplicates_and_no_props(tmp_path):
    path = tmp_path / "a.onnx"
    onnx.save(_model({"k": "wärme ✓", "empty": "", "long": "x" * 70000}), str(path))
    assert read_metadata_props(path) == {"k": "wärme ✓", "empty": "", "long": "x" * 70000}
    model = _model({})
    for value in ("first", "second"):
        entry = model.metadata_props.add()
        entry.key, entry.value = "dup", value
    onnx.save(model, str(path))
    assert read_metadata_props(path) == {"dup": "second"}
    onnx.save(_model({}), str(path))
    assert read_metadata_props(path) == {}


def test_broken_files_are_one_line_file_errors(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model({"k": "v"}), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError, match=r"m\.onnx: is truncated"):
        read_metadata_props(path)
    (tmp_path / "garbage.onnx").write_bytes(b"\x0f" * 64)  # wire type 7: not a protobuf message
    with pytest.raises(FileError, match=r"garbage\.onnx: is not an ONNX file"):
        read_metadata_props(tmp_path / "garbage.onnx")
    with pytest.raises(FileError, match="no such model file"):
        read_metadata_props(tmp_path / "missing.onnx")
    with pytest.raises(FileError, match="is a folder"):
        read_metadata_props(tmp_path)
