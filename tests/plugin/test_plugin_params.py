"""Plugin parameters, generated constants, launch geometry and the TensorRT glue's plain parts
(the QDP registration itself needs TensorRT >= 10.9 and is in test_plugin_gpu.py)."""
from __future__ import annotations

import ctypes
import importlib.util

import numpy as np
import pytest
from helpers import ROOT
from plugin_cases import yolov3_heads

from yolov3_trt.plugin import host, trt_plugin
from yolov3_trt.plugin.params import (
    BLOCK,
    PluginConfig,
    YoloParamsStruct,
    constants_header,
    launch_dims,
    max_device_capacity,
    shared_memory_bytes,
)
from yolov3_trt.plugin.sources import PluginError
from yolov3_trt.specs import DecodeSpec, NmsSpec

CONFIG = PluginConfig.from_heads(yolov3_heads(80), (416, 416), [(13, 13), (26, 26), (52, 52)], conf=0.25, iou=0.45,
                                 max_det=100, pre_nms_top_k=1024)


FLAT = dict(num_classes=80, input_size=(416, 416), anchors=CONFIG.anchors, strides=CONFIG.strides, conf=0.25,
            iou=0.45, max_det=100, pre_nms_top_k=1024)


def _config(**change) -> PluginConfig:
    """CONFIG with some of its spec fields changed."""
    f = {**FLAT, **change}
    return PluginConfig(DecodeSpec.from_strides(f["anchors"], f["strides"], f["num_classes"], f["input_size"]),
                        NmsSpec(f["conf"], f["iou"], f["max_det"], f["pre_nms_top_k"]))


def test_struct_layout_matches_the_library():
    if not host.available():
        pytest.skip("host library not built (pip install -e .)")
    assert host.load_library().yolo_decode_nms_params_size() == ctypes.sizeof(YoloParamsStruct)


def test_struct_values():
    s = CONFIG.to_struct()
    assert (s.num_classes, s.num_heads, s.input_w, s.input_h) == (80, 3, 416, 416)
    assert list(s.grid_w)[:3] == [13, 26, 52] and list(s.stride_x)[:3] == [32, 16, 8]
    assert s.anchors[2][0][0] == 10.0 and s.anchors[0][2][1] == 326.0
    assert s.conf == float(np.float32(0.25)) and s.iou == 0.45 and (s.max_det, s.pre_nms_top_k) == (100, 1024)


def test_constants_header_is_deterministic_and_complete():
    text = constants_header(CONFIG, fp16=False)
    assert text == constants_header(CONFIG, fp16=False)
    assert "#define YOLO_INPUT_T float" in constants_header(CONFIG, False)
    assert "#define YOLO_INPUT_T unsigned short" in constants_header(CONFIG, True)
    assert "#define YOLO_CAPACITY_POW2 1024" in text and "head2" in text and "head3" not in text
    for line in ("p.num_classes = 80;", "p.num_heads = 3;", "p.input_w = 416;", "p.input_h = 416;",
                 "p.stride_x[0] = 32;", "p.stride_x[1] = 16;", "p.stride_x[2] = 8;", "p.stride_x[3] = 0;",
                 "p.iou = 0.45;", "p.max_det = 100;", "p.pre_nms_top_k = 1024;"):
        assert f"    {line}\n" in text, line
    assert _config() == CONFIG
    low = _config(conf=0.001)
    assert f"(float){float(np.float32(0.001))!r}" in constants_header(low, False)


def test_shared_memory_budget():
    assert shared_memory_bytes(1024) == 26632          # what ptxas reports for the kernel
    assert shared_memory_bytes(max_device_capacity()) <= 48 * 1024 < shared_memory_bytes(max_device_capacity() + 1)
    assert launch_dims(6) == ((6, 1, 1), (BLOCK, 1, 1))
    with pytest.raises(ValueError):
        launch_dims(-1)


@pytest.mark.parametrize("change, message", [
    ({"num_classes": 0}, "num_classes"), ({"pre_nms_top_k": 0}, "pre_nms_top_k"), ({"max_det": -1}, "max_det"),
    ({"strides": ((32, 32), (16, 16), (7, 7))}, "does not divide"), ({"conf": -0.1}, "conf"),
    ({"anchors": ()}, "heads"),
])
def test_bad_configs(change, message):
    with pytest.raises(ValueError, match=message):
        _config(**change)


def test_supports_aot():
    assert not trt_plugin.supports_aot("10.3.0.30")
    assert not trt_plugin.supports_aot("10.8.0")
    assert (trt_plugin.supports_aot("10.9.0.34") and trt_plugin.supports_aot("10.13.2")
            and trt_plugin.supports_aot("11.4"))
    assert not trt_plugin.supports_aot("garbage")


def test_node_attributes_round_trip():
    attrs = trt_plugin.node_attributes(CONFIG)
    specs = trt_plugin.attribute_specs(3)
    assert list(attrs) == [name for name, _ in specs] == sorted(attrs)  # the order aot_impl receives them in
    # as TensorRT hands them over: 1-element arrays of the parser's types
    as_trt = {name: np.asarray([attrs[name]], dtype) for name, dtype in specs}
    back = trt_plugin.config_from_attributes(**as_trt)
    assert back.anchors == CONFIG.anchors and back.strides == CONFIG.strides and back.grids == CONFIG.grids
    assert back.to_struct().conf == CONFIG.to_struct().conf
    assert trt_plugin.config_from_attributes(**attrs) == CONFIG  # Python numbers too
    with pytest.raises(PluginError, match="missing .'stride2_y'."):
        trt_plugin.config_from_attributes(**{k: v for k, v in as_trt.items() if k != "stride2_y"})
    with pytest.raises(PluginError, match="must hold one value"):
        trt_plugin.config_from_attributes(**{**as_trt, "conf": np.asarray([0.1, 0.2], np.float32)})
    with pytest.raises(PluginError, match="unknown .'extra'."):
        trt_plugin.config_from_attributes(**as_trt, extra=np.asarray([1], np.int32))


def test_attribute_specs_are_scalars_sorted_by_name():
    for heads in trt_plugin.HEAD_COUNTS:
        specs = trt_plugin.attribute_specs(heads)
        names = [name for name, _ in specs]
        assert names == sorted(names) and len(names) == 7 + heads * (2 + 2 * trt_plugin.ANCHORS_PER_HEAD)
        assert {dtype for _, dtype in specs} == {np.int32, np.float32}


def test_plugin_refuses_other_anchor_counts():
    two = PluginConfig.from_heads(yolov3_heads(80), (416, 416), [(13, 13), (26, 26), (52, 52)], conf=0.25,
                                  iou=0.45, max_det=100, pre_nms_top_k=1024)
    two = _config(anchors=tuple(h[:2] for h in two.anchors))
    with pytest.raises(PluginError, match="head 0 has 2 anchors.*end2end"):
        trt_plugin.node_attributes(two)


def test_kernel_name_fits_tensorrt_10_13():
    from yolov3_trt.plugin.sources import KERNEL_NAME, MAX_KERNEL_NAME

    assert len(KERNEL_NAME) <= MAX_KERNEL_NAME == 15
    source = (ROOT / "plugins" / "yolo_decode_nms" / "yolo_decode_nms_kernel.cu").read_text()
    assert f"\n{KERNEL_NAME}(YOLO_HEAD_ARGS" in source


def test_ptx_target_follows_hardware_compatibility():
    assert trt_plugin.target_arch() == "compute_75"
    with trt_plugin.ptx_target("ampere+") as arch:
        assert arch == trt_plugin.target_arch() == "compute_80"
        with trt_plugin.ptx_target("same-cc"):
            assert trt_plugin.target_arch() == "compute_75"
        assert trt_plugin.target_arch() == "compute_80"
    assert trt_plugin.target_arch() == "compute_75"
    with pytest.raises(PluginError, match="unknown hardware compatibility"):
        with trt_plugin.ptx_target("turing+"):
            pass


def test_names_and_outputs():
    assert (trt_plugin.PLUGIN_NAMESPACE, trt_plugin.PLUGIN_NAME, trt_plugin.PLUGIN_VERSION) == \
        ("yolov3_trt", "YoloDecodeNms", "1")
    assert trt_plugin.op_type(3) == "YoloDecodeNms" and trt_plugin.op_type(2) == "YoloDecodeNms2"
    with pytest.raises(PluginError, match="end2end"):
        trt_plugin.op_type(4)
    assert trt_plugin.output_shapes("B", 100) == [(("B", 1), "int32"), (("B", 100, 4), "float32"),
                                                  (("B", 100), "float32"), (("B", 100), "int32")]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_register_without_tensorrt_says_so():
    with pytest.raises(ImportError):
        trt_plugin.register()
