"""Run the project's plugin registration against NVIDIA's real ``tensorrt.plugin`` layer.

Started by test_real_bindings.py in a child interpreter whose ``tensorrt`` is a real bindings
wheel over stub engine libraries (``bindings.py``): NVIDIA's enums, plugin-field types and the
whole ``tensorrt.plugin`` Python layer are real, but nothing can build or run an engine, and
``get_plugin_registry()`` returns None, so a recording registry stands in for it.

It walks the calls TensorRT makes on a quickly deployable AOT plugin while it builds an engine
from an ONNX plugin node, as far as the real types allow, and prints one JSON object:

1. ``register()`` (twice: idempotent), the creators it registers and their field names/types;
2. ``create_plugin`` with the fields TensorRT's ONNX parser derives from the node (INT -> int32
   array of 1, FLOAT -> float32 array of 1, INTS/FLOATS -> arrays; plugin_namespace,
   plugin_version and aot are the parser's own), in BUILD phase with STRICT_AOT;
3. ``get_output_data_types``; ``get_output_shapes`` with a recording expression builder (it
   stops where the real ``DimsExprs`` takes only TensorRT's own expression objects);
4. ``get_supported_format_combinations``, ``configure_plugin``, ``get_valid_tactics``;
5. ``get_launch_params`` (this calls the project's ``aot_impl`` with the attributes by position,
   as TensorRT does, and checks its return types) and ``get_kernel``.

Usage: python probe_plugin.py PLUGIN.onnx  (PTX is compiled with NVRTC or nvcc when present).
"""
from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np
import onnx


def main(onnx_path: str) -> dict:
    import tensorrt as trt

    report: dict = {"version": trt.__version__, "steps": {}}
    steps = report["steps"]
    try:
        import tensorrt.plugin  # noqa: F401
    except ImportError as err:
        report["tensorrt_plugin"] = f"absent ({err})"
        from yolov3_trt.build.__main__ import _choose_flavour
        from yolov3_trt.plugin import trt_plugin

        report["auto_flavour"] = _choose_flavour("auto", trt.__version__)
        try:
            trt_plugin.register()
            report["register"] = "registered"
        except Exception as err:  # the project must refuse with its own error
            report["register"] = f"{type(err).__name__}: {err}"
        return report
    report["tensorrt_plugin"] = "present"

    registry = RecordingRegistry()
    trt.get_plugin_registry = lambda: registry   # the real one is None over the stub libraries
    from yolov3_trt.plugin import trt_plugin

    configs: list = []
    compile_for = trt_plugin.aot_kernel

    def recording_kernel(config, fp16, arch=None):  # what aot_impl made of the positional attributes
        configs.append(config)
        return compile_for(config, fp16, arch)

    trt_plugin.aot_kernel = recording_kernel
    trt_plugin.register()
    trt_plugin.register()
    report["creators"] = {f"{ns}::{name}": [[f.name, str(f.type)] for f in c.field_names]
                          for (name, _, ns), c in registry.creators.items()}
    node = onnx.load(onnx_path).graph.node[-1]
    fields, node_order = parser_fields(trt, node)
    report["node_attribute_order"] = node_order
    creator = registry.get_creator(node.op_type, "1", trt_plugin.PLUGIN_NAMESPACE)
    heads = len(node.input)
    expected = trt_plugin.config_from_attributes(**{
        a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
        if a.name not in trt_plugin.NODE_ONLY_ATTRIBUTES})
    for name, fp16 in (("fp32", False), ("fp16", True)):
        configs.clear()
        steps[name] = walk(trt, creator, node.op_type, fields, heads, fp16)
        steps[name]["aot_config_equals_node"] = bool(configs) and configs[-1] == expected
    return report


class RecordingRegistry:
    """Stands in for ``trt.get_plugin_registry()`` (None over the stub libraries)."""

    def __init__(self):
        self.creators: dict = {}

    def register_creator(self, creator, namespace: str) -> bool:
        self.creators[(creator.name, creator.plugin_version, namespace)] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str = ""):
        return self.creators.get((name, version, namespace))


def parser_fields(trt, node: onnx.NodeProto):
    """The PluginFieldCollection TensorRT's ONNX parser builds from a plugin node, in node order."""
    kinds = onnx.AttributeProto
    fields, order = [], []
    for attr in node.attribute:
        if attr.name in ("plugin_namespace", "plugin_version", "aot"):
            continue
        value = onnx.helper.get_attribute_value(attr)
        if attr.type in (kinds.INT, kinds.INTS):
            array, kind = np.asarray(value, np.int32).reshape(-1), trt.PluginFieldType.INT32
        elif attr.type in (kinds.FLOAT, kinds.FLOATS):
            array, kind = np.asarray(value, np.float32).reshape(-1), trt.PluginFieldType.FLOAT32
        else:
            raise ValueError(f"attribute {attr.name}: type {attr.type} is not one the plugin uses")
        fields.append(trt.PluginField(attr.name, array, kind))
        order.append(attr.name)
    return fields, order


class FakeExpr:
    """A shape expression with a known value (the real IDimensionExpr cannot be made in Python)."""

    def __init__(self, value: int):
        self.value = int(value)

    def is_constant(self) -> bool:
        return True

    def get_constant_value(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"FakeExpr({self.value})"


class FakeExprBuilder:
    def __init__(self, trt):
        ops = trt.DimensionOperation
        self.ops = {ops.SUM: lambda a, b: a + b, ops.PROD: lambda a, b: a * b, ops.SUB: lambda a, b: a - b,
                    ops.FLOOR_DIV: lambda a, b: a // b, ops.MAX: max, ops.MIN: min,
                    ops.CEIL_DIV: lambda a, b: -(-a // b)}

    def constant(self, value: int) -> FakeExpr:
        return FakeExpr(value)

    def operation(self, op, a: FakeExpr, b: FakeExpr) -> FakeExpr:
        return FakeExpr(self.ops[op](a.value, b.value))


class SymExprSetter:
    def __init__(self):
        self.nbSymExprs = 0
        self.exprs: dict = {}

    def __setitem__(self, index, expr):
        self.exprs[index] = expr


def _value(expr):
    """A ShapeExpr/SymInt32's value, through the fake builder's expression."""
    inner = getattr(expr, "_expr", expr)
    return inner.value if isinstance(inner, FakeExpr) else repr(inner)


def _attempt(record: dict, step: str, call):
    try:
        result = call()
    except Exception as err:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        import yolov3_trt

        package = os.path.dirname(yolov3_trt.__file__)
        record[step] = {"error": f"{type(err).__name__}: {err}",
                        "at": f"{os.path.basename(frame.filename)}:{frame.lineno}",
                        "in_project": any(f.filename.startswith(package)
                                          for f in traceback.extract_tb(err.__traceback__))}
        return None
    record[step] = {"ok": True}
    return result


BATCH, GRID = 4, ((13, 13), (26, 26), (52, 52))


def tensor_desc(trt, dtype, dims):
    desc = trt.DynamicPluginTensorDesc()
    inner = trt.PluginTensorDesc()
    inner.type, inner.format, inner.dims, inner.scale = dtype, trt.TensorFormat.LINEAR, trt.Dims(dims), 1.0
    desc.desc, desc.min, desc.max, desc.opt = inner, trt.Dims(dims), trt.Dims(dims), trt.Dims(dims)
    return desc


def walk(trt, creator, op_type: str, fields, heads: int, fp16: bool) -> dict:
    out: dict = {}
    plugin = _attempt(out, "create_plugin", lambda: creator.create_plugin(
        op_type, creator.plugin_namespace, trt.PluginFieldCollection(fields), trt.TensorRTPhase.BUILD,
        trt.QuickPluginCreationRequest.STRICT_AOT))
    if plugin is None:
        return out
    out["plugin_class"] = type(plugin).__name__
    out["attrs"] = {k: np.asarray(v).tolist() for k, v in plugin.attrs.items()}
    in_type = trt.float16 if fp16 else trt.float32
    channels = int(np.asarray(plugin.attrs["num_classes"]).item()) + 5
    in_dims = [(BATCH, 3 * channels, *GRID[i]) for i in range(heads)]
    types = _attempt(out, "get_output_data_types", lambda: plugin.get_output_data_types([in_type] * heads,
                                                                                          [4] * heads))
    if types is None:
        return out
    out["output_types"] = [str(t) for t in types]
    _attempt(out, "get_output_shapes", lambda: plugin.get_output_shapes([list(d) for d in in_dims], [],
                                                                        FakeExprBuilder(trt)))
    if not getattr(plugin, "output_descs", None):
        return out
    out["output_shapes"] = [[_value(e) for e in d.shape_expr] for d in plugin.output_descs]
    max_det = int(np.asarray(plugin.attrs["max_det"]).item())
    out_dims = [(BATCH, 1), (BATCH, max_det, 4), (BATCH, max_det), (BATCH, max_det)]
    out_types = [trt.int32, trt.float32, trt.float32, trt.int32]
    in_out = [tensor_desc(trt, in_type, d) for d in in_dims] + [tensor_desc(trt, t, d)
                                                                 for t, d in zip(out_types, out_dims)]
    combos = _attempt(out, "get_supported_format_combinations",
                      lambda: plugin.get_supported_format_combinations(in_out, heads))
    if combos is None:
        return out
    width = len(in_out)
    out["combinations"] = [[str(c.type) for c in combos[i:i + width]] for i in range(0, len(combos), width)]
    _attempt(out, "configure_plugin", lambda: plugin.configure_plugin(in_out[:heads], in_out[heads:]))
    tactics = _attempt(out, "get_valid_tactics", plugin.get_valid_tactics)
    out["tactics"] = tactics
    plugin.set_tactic(0)
    returned: dict = {}
    inner_aot = plugin.aot_impl_function

    def recording(*args):
        returned["arguments"] = len(args)
        result = inner_aot(*args)
        name, ptx, launch, extra = result
        returned.update(kernel_name=name, kernel_name_length=len(name), ptx_bytes=len(ptx),
                        ptx_entry=(b".entry " + (name.encode() if isinstance(name, str) else name) + b"(") in
                        (ptx if isinstance(ptx, bytes) else ptx.encode()),
                        ptx_target=next((line.split()[1] for line in
                                         (ptx.decode() if isinstance(ptx, bytes) else ptx).splitlines()
                                         if line.startswith(".target")), None),
                        grid_x=_value(launch.grid_x), block_x=_value(launch.block_x),
                        shared_mem=_value(launch.shared_mem), extra=[_value(e) for e in extra],
                        extra_types=[type(e).__name__ for e in extra])
        return result

    plugin.aot_impl_function = recording
    params, setter = type("LaunchParams", (), {})(), SymExprSetter()
    _attempt(out, "get_launch_params", lambda: plugin.get_launch_params(
        [list(d) for d in in_dims], in_out, heads, params, setter, FakeExprBuilder(trt)))
    out["aot_impl"] = returned
    if out["get_launch_params"].get("ok"):
        kernel = _attempt(out, "get_kernel", lambda: plugin.get_kernel([d.desc for d in in_out[:heads]],
                                                                       [d.desc for d in in_out[heads:]]))
        if kernel is not None:
            out["kernel"] = {"name": kernel[0] if isinstance(kernel[0], str) else kernel[0].decode(),
                             "ptx_bytes": len(kernel[1])}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
