"""A registration that fails part-way can be retried (real ``tensorrt.plugin`` layer).

The first ``register()`` fails inside ``tensorrt.plugin.aot_impl`` for the second op (as a
TensorRT error there would); the second call must complete, with every op fully defined.
Prints {"first": error, "second": "ok" or error, "complete": [...]}.
"""
from __future__ import annotations

import json

import tensorrt as trt
import tensorrt.plugin as trtp
from probe_plugin import RecordingRegistry


def main() -> dict:
    registry = RecordingRegistry()
    trt.get_plugin_registry = lambda: registry
    from tensorrt.plugin import _lib

    from yolov3_trt.plugin import trt_plugin

    real, calls = trtp.aot_impl, []

    def failing_once(plugin_id):
        calls.append(plugin_id)
        if len(calls) == 2:
            raise RuntimeError("simulated TensorRT failure")
        return real(plugin_id)

    trtp.aot_impl = failing_once
    report = {}
    try:
        trt_plugin.register()
        report["first"] = "ok"
    except RuntimeError as err:
        report["first"] = str(err)
    trtp.aot_impl = real
    try:
        trt_plugin.register()
        report["second"] = "ok"
    except Exception as err:
        report["second"] = f"{type(err).__name__}: {err}"
    report["complete"] = sorted(pid for pid, d in _lib.QDP_REGISTRY.items()
                                if d.aot_impl_func is not None and d.autotune_func is not None)
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
