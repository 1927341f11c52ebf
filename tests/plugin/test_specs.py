"""DecodeSpec / NmsSpec: validation, round trips (metadata, sidecar, plugin attributes) and the C
forms (ctypes mirror vs yolo_params.h, generated initialiser vs ctypes, field by field)."""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest
from helpers import ROOT

from yolov3_trt.errors import FileError
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.plugin import trt_plugin
from yolov3_trt.plugin.params import PluginConfig, YoloParamsStruct, constants_header
from yolov3_trt.specs import DecodeSpec, HeadSpec, NmsSpec
from yolov3_trt.tensorrt.sidecar import EngineInfo, read_sidecar, write_sidecar

ANCHORS = (((16.0, 16.0), (16.0, 8.0), (40.0, 30.0)), ((8.0, 8.0), (12.0, 20.0), (24.0, 12.0)))
DECODE = DecodeSpec.from_strides(ANCHORS, ((32, 32), (16, 16)), 3, (96, 64))
NMS = NmsSpec(conf=0.25, iou=0.45, max_det=100, pre_nms_top_k=1024)
HEADER = ROOT / "plugins" / "yolo_decode_nms" / "yolo_params.h"


def test_grids_are_width_height_everywhere():
    assert DECODE.grids == ((3, 2), (6, 4)) and DECODE.strides == ((32, 32), (16, 16))
    assert DECODE.head_shapes() == ((24, 2, 3), (24, 4, 6))            # arrays: (channels, grid_h, grid_w)
    assert DecodeSpec.from_grids(ANCHORS, DECODE.grids, 3, (96, 64)) == DECODE
    outputs = [np.zeros((1, *shape), np.float32) for shape in DECODE.head_shapes()]
    assert DecodeSpec.from_outputs(ANCHORS, outputs, 3, (96, 64)) == DECODE
    assert (DECODE.num_boxes, DECODE.num_pairs) == (6 * 3 + 24 * 3, 90 * 3)
    assert PluginConfig(DECODE, NMS).grids == DECODE.grids


@pytest.mark.parametrize("build, message", [
    (lambda: DecodeSpec.from_strides(ANCHORS, ((32, 32), (16, 16)), 0, (96, 64)), "num_classes must be >= 1"),
    (lambda: DecodeSpec.from_strides(ANCHORS, ((32, 32), (7, 7)), 3, (96, 64)), r"stride \(7, 7\) does not divide"),
    (lambda: DecodeSpec.from_grids(ANCHORS, ((3, 2), (5, 4)), 3, (96, 64)), "grid 5x4 does not divide"),
    (lambda: DecodeSpec.from_strides(ANCHORS, ((32, 32),), 3, (96, 64)), "2 anchor sets for 1 strides"),
    (lambda: DecodeSpec.from_strides(ANCHORS, ((32, 32), (16, 16)), 3, (0, 64)), "input size must be positive"),
    (lambda: DecodeSpec((), 3, (96, 64)), "at least one head"),
    (lambda: DecodeSpec((HeadSpec((), (32, 32), (3, 2)),), 3, (96, 64)), "head 0 has no anchors"),
    (lambda: DecodeSpec((HeadSpec(ANCHORS[0], (32, 32), (3, 3)),), 3, (96, 64)), "do not divide the input 96x64"),
    (lambda: NmsSpec(-0.1, 0.45, 100, 10), "conf must be >= 0"),
    (lambda: NmsSpec(float("nan"), 0.45, 100, 10), "conf must be >= 0"),
    (lambda: NmsSpec(0.1, float("nan"), 100, 10), "iou must be a number"),
    (lambda: NmsSpec(0.1, 0.45, -1, 10), "max_det must be >= 0"),
    (lambda: NmsSpec(0.1, 0.45, 100, 0), "pre_nms_top_k must be >= 1 or None"),
    (lambda: PluginConfig(DECODE, NmsSpec(0.1, 0.45, 100, None)), "needs a number for pre_nms_top_k"),
])
def test_validation(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_top_k_for():
    assert NmsSpec(0.1, 0.45, 100, None).top_k_for(DECODE) == 270
    assert NmsSpec(0.1, 0.45, 100, 1024).top_k_for(DECODE) == 270 and NMS.top_k_for(DECODE) == 270
    assert NmsSpec(0.1, 0.45, 100, 24).top_k_for(DECODE) == 24


def test_metadata_round_trip_and_old_files():
    meta = ModelMetadata.from_specs(DECODE, ("a", "b", "c"), NMS, flavour="end2end")
    assert meta.decode_spec() == DECODE and meta.nms_spec() == NMS
    back = ModelMetadata.from_props(meta.to_props(), "m.onnx")
    assert back == meta and back.decode_spec() == DECODE and back.nms_spec() == NMS
    # the stored keys are those of files exported before the specs existed
    props = meta.to_props()
    assert props["yolov3_trt.strides"] == "[[32, 32], [16, 16]]" and props["yolov3_trt.input_size"] == "[96, 64]"
    assert props["yolov3_trt.pre_nms_top_k"] == "1024"
    raw = ModelMetadata.from_specs(DECODE, ("a", "b", "c"), flavour="raw")
    assert raw.nms_spec() is None and "yolov3_trt.conf" not in raw.to_props()


def test_inconsistent_metadata_names_the_file():
    meta = ModelMetadata(flavour="raw", input_size=(96, 64), names=("a",), anchors=ANCHORS[:1], strides=((7, 7),))
    with pytest.raises(FileError, match=r"^m.onnx: broken yolov3_trt metadata \(head 0: stride"):
        meta.decode_spec("m.onnx")


def test_sidecar_round_trip(tmp_path):
    meta = ModelMetadata.from_specs(DECODE, ("a", "b", "c"), NMS, flavour="plugin")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, EngineInfo(tensorrt_version="10.13.0.35", gpu_name="Orin", compute_capability=(8, 7),
                                     precision="fp16", input_size=meta.input_size, batch=(1, 1, 4), flavour="plugin",
                                     names=meta.names, anchors=meta.anchors, model=meta.to_props()))
    info = read_sidecar(engine)
    assert info.decode_spec(engine) == DECODE and info.nms_spec(engine) == NMS


def test_plugin_attributes_agree_with_the_specs_field_by_field():
    config = PluginConfig(DECODE, NMS)
    attrs = trt_plugin.node_attributes(config)
    assert (attrs["num_classes"], attrs["input_w"], attrs["input_h"]) == (3, 96, 64)
    for i, head in enumerate(DECODE.heads):
        assert (attrs[f"stride{i}_x"], attrs[f"stride{i}_y"]) == head.stride
        for j, (w, h) in enumerate(head.anchors):
            assert (attrs[f"anchor{i}_{j}_w"], attrs[f"anchor{i}_{j}_h"]) == (w, h)
    assert (attrs["conf"], attrs["iou"], attrs["max_det"], attrs["capacity"]) == (0.25, 0.45, 100, 1024)
    assert trt_plugin.config_from_attributes(**attrs) == config


def _header_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, C type, array dims) of YoloParams' fields in yolo_params.h, in order."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    body = re.search(r"typedef struct YoloParams \{(.*?)\} YoloParams;", text, re.S).group(1)
    fields = []
    for ctype, declarators in re.findall(r"\s*(int|float|double)\s+([^;]+);", body):
        for declarator in declarators.split(","):
            name, *dims = re.findall(r"\w+", declarator)
            fields.append((name, ctype, tuple(dims)))
    return fields


def _ctypes_fields() -> list[tuple[str, str, tuple[str, ...]]]:
    names = {ctypes.c_int: "int", ctypes.c_float: "float", ctypes.c_double: "double"}
    symbols = {4: "YOLO_MAX_HEADS", 9: "YOLO_MAX_ANCHORS", 2: "2"}
    out = []
    for name, ctype in YoloParamsStruct._fields_:
        dims = []
        while hasattr(ctype, "_length_"):
            dims.append(symbols[ctype._length_])
            ctype = ctype._type_
        out.append((name, names[ctype], tuple(dims)))
    return out


def test_ctypes_mirror_matches_the_header():
    assert _ctypes_fields() == _header_fields()


def test_initialiser_assigns_every_field_by_name():
    text = constants_header(PluginConfig(DECODE, NMS), fp16=False)
    for name, _, dims in _header_fields():
        assert re.search(rf"^    p\.{name}(\[\d+\])* = ", text, re.M), name
    assert "    p.stride_y[1] = 16;\n" in text and "    p.anchors[1][2][1] = 12.0;\n" in text
    assert "    p.grid_w[0] = 3;\n    p.grid_w[1] = 6;\n" in text and "    p.grid_h[1] = 4;\n" in text


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_initialiser_equals_the_ctypes_struct_byte_for_byte(tmp_path):
    """The generated C++ (compiled for the host) builds the same YoloParams bytes as to_struct()."""
    config = PluginConfig(DECODE, NmsSpec(conf=0.001, iou=0.5, max_det=7, pre_nms_top_k=33))
    (tmp_path / "yolo_decode_nms_constants.h").write_text(constants_header(config, fp16=True))
    (tmp_path / "dump.cpp").write_text(
        '#include <cstdio>\n#include "yolo_decode_nms_constants.h"\n'
        "int main() { constexpr YoloParams p = yolo_params_init();\n"
        "  fwrite(&p, sizeof p, 1, stdout); return 0; }\n")
    exe = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++17", "-I", str(HEADER.parent), "-I", str(tmp_path), str(tmp_path / "dump.cpp"),
                    "-o", str(exe)], check=True, capture_output=True)
    dumped = subprocess.run([str(exe)], check=True, capture_output=True).stdout
    assert dumped == bytes(config.to_struct())
