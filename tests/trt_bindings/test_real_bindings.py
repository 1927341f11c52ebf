"""The project's TensorRT code against NVIDIA's real Python bindings, on the CPU.

For each supported release, a child interpreter imports the real ``tensorrt`` (bindings wheel
over stub engine libraries, :mod:`bindings`) and runs:

- ``probe_plugin.py``: the plugin registration and every plugin call TensorRT makes while it
  builds an engine from the exported node, as far as the real types allow (see its docstring);
- ``probe_names.py``: every TensorRT name the package uses, resolved in that release.

Not a GPU run: nothing builds or runs an engine. Skipped with the reason when the package index
or a C compiler is unavailable; the plugin's ``aot_impl`` compiles PTX, so that part needs NVRTC
(``[dev]``) or nvcc.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from bindings import RELEASES, Unavailable, prepare
from helpers import ROOT, random_model
from trt_names import used_names

from yolov3_trt.names import COCO_NAMES
from yolov3_trt.plugin import ptx, trt_plugin
from yolov3_trt.plugin.sources import KERNEL_NAME, MAX_KERNEL_NAME

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
AOT_RELEASES = [v for v in RELEASES if trt_plugin.supports_aot(v)]
BATCH, MAX_DET = 4, 100
PLUGIN_NAMES = {"tensorrt.plugin." + n for n in ("AutoTuneCombination", "KernelLaunchParams", "SymInt32",
                                                  "SymIntExprs", "TensorDesc", "aot_impl", "autotune",
                                                  "from_shape_expr", "op", "register")}
# Names some releases lack, each behind a guard in the code. Exact: a new absence fails until it
# is guarded and listed, and a listed name that a release gains fails until it is removed here.
EXPECTED_MISSING = {
    "10.3": ({"tensorrt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY",   # hasattr in build/steps.py
              "tensorrt.OnnxParserFlag.ADJUST_FOR_DLA"} | PLUGIN_NAMES,           # hasattr; supports_aot()
             {"block_x", "grid_x", "shared_mem"}),                                 # KernelLaunchParams fields
    "10.9": ({"tensorrt.OnnxParserFlag.ADJUST_FOR_DLA"}, set()),
    "10.13": ({"tensorrt.OnnxParserFlag.ADJUST_FOR_DLA"}, set()),
    "10.14": ({"tensorrt.OnnxParserFlag.ADJUST_FOR_DLA"}, set()),
    "11.4": (set(), set()),
}


def _env(version: str) -> dict:
    try:
        return prepare(version)
    except Unavailable as why:
        pytest.skip(str(why))


def _run(version: str, script: str, *args) -> dict:
    env = _env(version)
    done = subprocess.run([sys.executable, str(HERE / script), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=str(ROOT), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plugin_onnx(tmp_path_factory) -> dict:
    """heads -> an exported plugin ONNX (yolov3-tiny: 2 heads, yolov3: 3)."""
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("plugin")
    out = {}
    for cfg, heads in (("yolov3-tiny", 2), ("yolov3", 3)):
        out[heads] = folder / f"{cfg}.onnx"
        export_onnx(random_model(folder, cfg), out[heads], COCO_NAMES, flavour="plugin", size=(416, 416),
                    max_det=MAX_DET)
    return out


def _node_values(path: Path) -> dict:
    node = onnx.load(str(path)).graph.node[-1]
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
            if a.name not in trt_plugin.NODE_ONLY_ATTRIBUTES}


@pytest.mark.parametrize("version", AOT_RELEASES)
@pytest.mark.parametrize("heads", [2, 3])
def test_plugin_through_the_real_plugin_layer(version, heads, plugin_onnx):
    can_compile = ptx.nvrtc_version() is not None or ptx.nvcc_version() is not None
    report = _run(version, "probe_plugin.py", plugin_onnx[heads])
    assert report["version"] == version and report["tensorrt_plugin"] == "present"
    specs = trt_plugin.attribute_specs(heads)
    field_types = [[name, "PluginFieldType.FLOAT32" if dtype.__name__ == "float32" else "PluginFieldType.INT32"]
                   for name, dtype in specs]
    assert report["creators"][trt_plugin.plugin_id(heads)] == field_types
    assert set(report["creators"]) == {trt_plugin.plugin_id(h) for h in trt_plugin.HEAD_COUNTS}
    # one order for node, creator and aot_impl (TensorRT passes attributes to aot_impl by position)
    assert report["node_attribute_order"] == [name for name, _ in specs]
    values = _node_values(plugin_onnx[heads])
    channels = 3 * (len(COCO_NAMES) + 5)
    for precision, steps in report["steps"].items():
        assert steps["create_plugin"] == {"ok": True}, steps["create_plugin"]
        assert steps["plugin_class"] == "_TemplateAOTPlugin"
        assert {k: v for k, v in steps["attrs"].items()} == {k: [pytest.approx(v)] for k, v in values.items()}
        assert steps["output_types"] == ["DataType.INT32", "DataType.FLOAT", "DataType.FLOAT", "DataType.INT32"]
        # get_output_shapes ran the project's shape function; only NVIDIA's last step (DimsExprs takes
        # TensorRT's own expression objects) cannot run with Python-made expressions
        shape_step = steps["get_output_shapes"]
        assert shape_step.get("ok") or (not shape_step["in_project"] and "DimsExprs" in shape_step["error"])
        assert steps["output_shapes"] == [[BATCH, 1], [BATCH, MAX_DET, 4], [BATCH, MAX_DET], [BATCH, MAX_DET]]
        assert steps["combinations"] == [["DataType.FLOAT"] * heads + ["DataType.INT32", "DataType.FLOAT",
                                                                       "DataType.FLOAT", "DataType.INT32"],
                                         ["DataType.HALF"] * heads + ["DataType.INT32", "DataType.FLOAT",
                                                                      "DataType.FLOAT", "DataType.INT32"]]
        assert steps["configure_plugin"] == {"ok": True} and steps["tactics"] == []
        launch = steps["get_launch_params"]
        if not can_compile:
            continue  # aot_impl compiles the PTX: nothing to check it with here
        assert launch.get("ok") or not launch["in_project"], launch
        aot = steps["aot_impl"]
        assert aot["arguments"] == heads + len(specs) + 2, precision
        assert aot["kernel_name"] == KERNEL_NAME and aot["kernel_name_length"] <= MAX_KERNEL_NAME
        assert aot["ptx_entry"] and aot["ptx_target"] == "sm_75"   # compute_75: any GPU TensorRT 10 runs on
        assert (aot["grid_x"], aot["block_x"], aot["shared_mem"], aot["extra"]) == (BATCH, 256, 0, [BATCH])
        assert aot["extra_types"] == ["SymInt32"]
        assert steps["aot_config_equals_node"], "aot_impl decoded the positional attributes into another model"
    del channels


def test_tensorrt_10_3_falls_back_to_end2end(plugin_onnx):
    report = _run("10.3.0", "probe_plugin.py", plugin_onnx[3])
    assert report["tensorrt_plugin"].startswith("absent")
    assert report["auto_flavour"] == "end2end"
    assert report["register"].startswith("PluginError: TensorRT 10.3.0 has no AOT")


@pytest.mark.parametrize("version", RELEASES)
def test_every_tensorrt_name_exists_or_is_guarded(version, tmp_path):
    chains, members = used_names(ROOT / "yolov3_trt")
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"chains": chains, "members": members}), encoding="utf-8")
    report = _run(version, "probe_names.py", names)
    assert report["version"] == version
    expected_chains, expected_members = EXPECTED_MISSING[".".join(version.split(".")[:2])]
    assert set(report["missing_chains"]) == expected_chains
    assert set(report["missing_members"]) == expected_members


@pytest.mark.parametrize("version", ["10.13.3.9", "11.4.0.106"])
def test_partial_registration_can_be_retried(version):
    report = _run(version, "probe_retry.py")
    assert report["first"] == "simulated TensorRT failure"
    assert report["second"] == "ok", report
    assert report["complete"] == sorted(trt_plugin.plugin_id(h) for h in trt_plugin.HEAD_COUNTS)
