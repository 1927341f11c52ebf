"""The plugin host library's statuses: out of memory is the machine's failure, not the caller's."""
from __future__ import annotations

import numpy as np
import pytest

from yolov3_trt.errors import EnvironmentFailure, YoloV3TrtError
from yolov3_trt.plugin import host
from yolov3_trt.specs import DecodeSpec, NmsSpec

DECODE = DecodeSpec.from_grids([((10.0, 14.0), (23.0, 27.0))], [(2, 2)], 2, (64, 64))
OUTPUTS = [np.zeros((1, 2 * 7, 2, 2), np.float32)]


class FakeRun:
    def __init__(self, status: int):
        self.status = status

    def __call__(self, *args) -> int:
        return self.status


class FakeLibrary:
    def __init__(self, status: int):
        self.yolo_decode_nms_run = FakeRun(status)


@pytest.mark.parametrize("status, error, words", [
    (3, EnvironmentFailure, "yolo_decode_nms_run failed: out of memory"),
    (2, ValueError, "yolo_decode_nms_run failed: bad argument"),
])
def test_status_maps_to_its_error(monkeypatch, status, error, words) -> None:
    monkeypatch.setattr(host, "load_library", lambda: FakeLibrary(status))
    with pytest.raises(error, match=words) as err:
        host.postprocess_host(OUTPUTS, DECODE, NmsSpec(conf=0.5, iou=0.45, max_det=5, pre_nms_top_k=3840))
    if status == 3:
        assert not isinstance(err.value, (YoloV3TrtError, ValueError))  # exit 1, not a usage error
