"""Engine sidecar: written, read back, and every mismatch refused with one line.

No TensorRT here: the "engine" is a file of bytes and the GPU a CudaDevice value. What is tested
is the sidecar's own logic (JSON round trip, version/GPU/capability/hash rules), not TensorRT.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from yolov3_trt.tensorrt.device import CudaDevice
from yolov3_trt.tensorrt.sidecar import (EngineCompatibilityError, EngineInfo, check_compatible, check_engine_hash,
                                      file_sha256, read_sidecar, sidecar_path, write_sidecar)
from yolov3_trt.errors import FileError
from yolov3_trt.metadata import ModelMetadata

ORIN = CudaDevice(0, "Orin", (8, 7), 30 << 30, 12060)
META = ModelMetadata(flavour="end2end", input_size=(416, 416), names=("a", "b"),
                     anchors=(((10.0, 14.0), (23.0, 27.0)), ((37.0, 58.0), (81.0, 82.0))),
                     strides=((32, 32), (16, 16)), conf=0.25, iou=0.45, max_det=100, pre_nms_top_k=3840)


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "tiny.engine"
    path.write_bytes(b"not a real plan, only bytes to hash")
    info = EngineInfo(tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability=(8, 7), precision="int8",
                      input_size=(416, 416), batch=(1, 4, 8), flavour="end2end", names=META.names,
                      anchors=META.anchors, engine_sha256=file_sha256(path), onnx_sha256="ab" * 32,
                      onnx_file="tiny-int8.onnx", model=META.to_props())
    write_sidecar(path, info)
    return path, info


def test_round_trip_and_metadata(engine):
    path, info = engine
    assert sidecar_path(path).name == "tiny.engine.json"
    data = json.loads(sidecar_path(path).read_text())
    assert data["format"] == "yolov3_trt.engine" and data["compute_capability"] == "8.7"
    assert data["names"] == ["a", "b"] and data["batch"] == [1, 4, 8] and data["precision"] == "int8"
    back = read_sidecar(path)
    assert back == info
    assert back.model_metadata(path) == META
    check_compatible(path, back, "10.3.0.30", ORIN)   # same TensorRT, same GPU: fine
    check_engine_hash(path, back)


@pytest.mark.parametrize("version, device, expected", [
    ("10.13.0.35", ORIN, "built with TensorRT 10.3.0.30, this is TensorRT 10.13.0.35"),
    ("10.3.0.30", CudaDevice(0, "Xavier", (7, 2), 1, 1), "engine generated on an incompatible device"),
    ("10.3.0.30", CudaDevice(0, "NVIDIA RTX A2000", (8, 6), 1, 1), "engine generated on an incompatible device"),
    ("10.3.0.30", CudaDevice(0, "Orin NX", (8, 7), 1, 1), "engines are tuned for one GPU model"),
])
def test_mismatch_is_one_line_naming_engine_and_fix(engine, version, device, expected):
    path, info = engine
    with pytest.raises(EngineCompatibilityError) as err:
        check_compatible(path, info, version, device)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert message.startswith(str(path)) and "python -m yolov3_trt.build --model tiny-int8.onnx" in message


def test_compatibility_options(engine):
    path, info = engine
    ampere = dataclasses.replace(info, hardware_compatibility="ampere+")
    check_compatible(path, ampere, "10.3.0.30", CudaDevice(0, "NVIDIA RTX A2000", (8, 6), 1, 1))
    with pytest.raises(EngineCompatibilityError, match="sm 8.0 or newer"):
        check_compatible(path, ampere, "10.3.0.30", CudaDevice(0, "Tesla T4", (7, 5), 1, 1))
    same_cc = dataclasses.replace(info, hardware_compatibility="same-cc")
    check_compatible(path, same_cc, "10.3.0.30", CudaDevice(0, "Orin NX", (8, 7), 1, 1))
    with pytest.raises(EngineCompatibilityError, match="incompatible device"):
        check_compatible(path, same_cc, "10.3.0.30", CudaDevice(0, "RTX 4090", (8, 9), 1, 1))
    versioned = dataclasses.replace(info, version_compatible=True)
    check_compatible(path, versioned, "10.13.0.35", ORIN)        # later 10.x runs it
    with pytest.raises(EngineCompatibilityError, match="version-compatible"):
        check_compatible(path, versioned, "11.4.0.1", ORIN)      # another major does not
    with pytest.raises(EngineCompatibilityError, match="version-compatible"):
        check_compatible(path, versioned, "10.2.0.1", ORIN)      # nor an older release


def test_hash_mismatch(engine):
    path, info = engine
    check_engine_hash(path, info, path.read_bytes())              # the bytes already read, hashed the same
    with pytest.raises(EngineCompatibilityError, match="differs from its sidecar's"):
        check_engine_hash(path, info, b"another plan")
    path.write_bytes(b"another plan")
    with pytest.raises(EngineCompatibilityError, match="differs from its sidecar's") as err:
        check_engine_hash(path, info)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_missing_and_broken_sidecars(tmp_path, engine):
    path, _ = engine
    lonely = tmp_path / "lonely.engine"
    lonely.write_bytes(b"x")
    with pytest.raises(FileError, match="no sidecar lonely.engine.json"):
        read_sidecar(lonely)
    side = sidecar_path(path)
    data = json.loads(side.read_text())
    for change, message in [({"format": "other"}, "not a yolov3_trt engine sidecar"),
                            ({"precision": "int4"}, "unknown precision"),
                            ({"batch": [4, 2, 8]}, "min <= opt <= max"),
                            ({"compute_capability": "eight"}, "broken engine sidecar"),
                            ({"version": 99}, "newer than this yolov3_trt reads"),
                            ({"version": "one"}, "broken engine sidecar")]:
        side.write_text(json.dumps({**data, **change}))
        with pytest.raises(FileError, match=message):
            read_sidecar(path)
    side.write_text("{ not json")
    with pytest.raises(FileError, match="unreadable engine sidecar"):
        read_sidecar(path)


def test_plugin_flavour_metadata(engine):
    path, info = engine
    props = {**META.to_props(), "yolov3_trt.flavour": "plugin"}
    meta = dataclasses.replace(info, flavour="plugin", model=props).model_metadata(path)
    assert meta.flavour == "plugin" and meta.max_det == 100
