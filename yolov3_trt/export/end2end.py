"""Append decode + NMS to a raw YOLOv3 ONNX graph, with standard ONNX ops only.

The result follows the EfficientNMS output convention (DESIGN.md section 2):
``num_dets [B,1] int32``, ``boxes [B,K,4] float32`` (xyxy, network-input pixels),
``scores [B,K] float32``, ``classes [B,K] int32`` with ``K = max_det``; slots past ``num_dets``
hold zero boxes and scores and class -1.

It computes what :func:`yolov3_trt.postprocess.postprocess` computes, in the same order:

1. decode each head (Darknet's candidate order: cell, then anchor) to xyxy boxes and
   ``sigmoid(obj) * sigmoid(cls)`` scores, flattened to candidates ``box * C + class``;
2. keep the ``pre_nms_top_k`` best candidates (``TopK``, ties to the lower index; TensorRT's
   TopK takes k <= 3840);
3. per-class greedy NMS (``NonMaxSuppression`` on one-hot class scores, strict ``> conf`` and
   ``> iou`` as Darknet);
4. the ``max_det`` best survivors (``ScatterND`` into a dense row, ``TopK``).

Only onnx is imported: TensorRT's ONNX parser and ONNX Runtime both run these ops, so the same
file serves the TensorRT fallback path where the CUDA plugin is unavailable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..specs import DecodeSpec, HeadSpec, NmsSpec

OUTPUT_NAMES = ("num_dets", "boxes", "scores", "classes")


class _Graph:
    """Adds nodes and constants to a graph with unique names."""

    def __init__(self, graph: onnx.GraphProto, prefix: str = "e2e"):
        self.graph, self.prefix, self.count = graph, prefix, 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}/{hint}_{self.count}"

    def const(self, value, hint: str = "c", dtype=None) -> str:
        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, outputs: int = 1,
           names: Sequence[str] | None = None, **attrs) -> list[str]:
        outs = list(names) if names else [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.graph.node.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type), **attrs))
        return outs

    def one(self, op_type: str, inputs: Sequence[str], hint: str | None = None, **attrs) -> str:
        return self.op(op_type, inputs, hint, **attrs)[0]


def _grid_and_anchors(grid_w: int, grid_h: int, anchors: Sequence[tuple[float, float]]):
    """Per-candidate (cx, cy) cell offsets and (pw, ph) anchors, in cell-major, anchor-minor order."""
    num = len(anchors)
    ys, xs = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    cells = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)   # (H*W, 2)
    grid = np.repeat(cells, num, axis=0)                                   # (H*W*A, 2)
    priors = np.tile(np.asarray(anchors, np.float32), (grid_w * grid_h, 1))  # (H*W*A, 2)
    return grid[None], priors[None]


def _decode_head(g: _Graph, raw: str, head: HeadSpec, classes: int) -> tuple[str, str]:
    """Raw head (B, A*(5+C), H, W) -> boxes (B, n, 4) xyxy and scores (B, n, C)."""
    num, channels = len(head.anchors), classes + 5
    (grid_w, grid_h), cells = head.grid, head.cells
    x = g.one("Reshape", [raw, g.const([0, num, channels, cells], "shape", np.int64)])
    x = g.one("Transpose", [x], perm=[0, 3, 1, 2])                                 # (B, HW, A, 5+C)
    x = g.one("Reshape", [x, g.const([0, cells * num, channels], "shape", np.int64)])
    axis = g.const([2], "axis", np.int64)

    def part(start: int, end: int) -> str:
        return g.one("Slice", [x, g.const([start], "start", np.int64), g.const([end], "end", np.int64), axis])

    grid, priors = _grid_and_anchors(grid_w, grid_h, head.anchors)
    stride = np.asarray(head.stride, np.float32)
    centre = g.one("Mul", [g.one("Add", [g.one("Sigmoid", [part(0, 2)]), g.const(grid, "grid")]),
                           g.const(stride, "stride")])
    half = g.one("Mul", [g.one("Mul", [g.one("Exp", [part(2, 4)]), g.const(priors, "anchors")]),
                         g.const(np.float32(0.5), "half")])
    boxes = g.one("Concat", [g.one("Sub", [centre, half]), g.one("Add", [centre, half])], axis=2)
    scores = g.one("Mul", [g.one("Sigmoid", [part(4, 5)]), g.one("Sigmoid", [part(5, channels)])])
    return boxes, scores


def append_end2end(model: onnx.ModelProto, decode: DecodeSpec, nms: NmsSpec) -> onnx.ModelProto:
    """Replace ``model``'s raw head outputs (one per ``decode`` head, in order) with the decode +
    NMS outputs of ``nms`` (in place; returned). The graph's input size must be ``decode``'s.
    ValueError unless 1 <= max_det <= the candidates entering NMS."""
    graph = model.graph
    raw_outputs = [o.name for o in graph.output]
    if len(raw_outputs) != len(decode.heads):
        raise ValueError(f"graph has {len(raw_outputs)} outputs for {len(decode.heads)} heads")
    classes, conf, iou, max_det = decode.num_classes, nms.conf, nms.iou, nms.max_det
    top_k = nms.top_k_for(decode)
    if not 1 <= max_det <= top_k:
        raise ValueError(f"max_det={max_det} must be in 1..{top_k} (pre_nms_top_k, candidates)")
    g = _Graph(graph)
    decoded = [_decode_head(g, raw, head, classes) for raw, head in zip(raw_outputs, decode.heads)]
    boxes = g.one("Concat", [b for b, _ in decoded], "boxes", axis=1)                   # (B, N, 4)
    scores = g.one("Concat", [s for _, s in decoded], "scores", axis=1)                 # (B, N, C)
    flat = g.one("Reshape", [scores, g.const([0, -1], "shape", np.int64)])              # (B, N*C)
    top_scores, top_index = g.op("TopK", [flat, g.const([top_k], "k", np.int64)], outputs=2, axis=1,
                                 largest=1, sorted=1)
    n_classes = g.const(np.int64(classes), "classes")
    box_index = g.one("Div", [top_index, n_classes])                                    # (B, K)
    class_index = g.one("Mod", [top_index, n_classes])
    last = g.const([2], "axes", np.int64)
    gather4 = g.one("Expand", [g.one("Unsqueeze", [box_index, last]), g.const([1, 1, 4], "shape", np.int64)])
    cand_boxes = g.one("GatherElements", [boxes, gather4], axis=1)                      # (B, K, 4)
    onehot = g.one("OneHot", [class_index, n_classes, g.const([0.0, 1.0], "values", np.float32)], axis=-1)
    class_scores = g.one("Transpose", [g.one("Mul", [onehot, g.one("Unsqueeze", [top_scores, last])])],
                         perm=[0, 2, 1])                                                 # (B, C, K)
    selected = g.one("NonMaxSuppression", [cand_boxes, class_scores, g.const([top_k], "max_out", np.int64),
                                           g.const([iou], "iou", np.float32), g.const([conf], "conf", np.float32)],
                     center_point_box=0)                                                 # (M, 3): b, c, j
    batch_slot = g.one("Gather", [selected, g.const([0, 2], "cols", np.int64)], axis=1)  # (M, 2): b, j
    kept = g.one("GatherND", [top_scores, batch_slot])                                   # (M,)
    empty = g.one("ConstantOfShape", [g.one("Shape", [top_scores])],
                  value=numpy_helper.from_array(np.asarray([-1.0], np.float32)))
    dense = g.one("ScatterND", [empty, batch_slot, kept])                                # (B, K), -1 = dropped
    final_scores, final_slot = g.op("TopK", [dense, g.const([max_det], "k", np.int64)], outputs=2, axis=1,
                                    largest=1, sorted=1)
    valid = g.one("Greater", [final_scores, g.const(np.float32(-0.5), "half")])
    slot4 = g.one("Expand", [g.one("Unsqueeze", [final_slot, last]), g.const([1, 1, 4], "shape", np.int64)])
    out_boxes = g.one("GatherElements", [cand_boxes, slot4], axis=1)
    zero = g.const(np.float32(0.0), "zero")
    g.op("Where", [g.one("Unsqueeze", [valid, last]), out_boxes, zero], names=["boxes"])
    g.op("Where", [valid, final_scores, zero], names=["scores"])
    out_classes = g.one("Cast", [g.one("GatherElements", [class_index, final_slot], axis=1)], to=TensorProto.INT32)
    g.op("Where", [valid, out_classes, g.const(np.int32(-1), "minus_one")], names=["classes"])
    count = g.one("ReduceSum", [g.one("Cast", [valid], to=TensorProto.INT32), g.const([1], "axes", np.int64)],
                  keepdims=1)
    g.op("Identity", [count], names=["num_dets"])

    set_efficientnms_outputs(graph, "batch", max_det)
    return model


def set_efficientnms_outputs(graph: onnx.GraphProto, batch: int | str, max_det: int) -> None:
    """Replace the graph's outputs with EfficientNMS's: num_dets [B,1] int32, boxes [B,K,4] float32,
    scores [B,K] float32, classes [B,K] int32 (K = ``max_det``; ``batch`` a size or a symbol)."""
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("num_dets", TensorProto.INT32, [batch, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, max_det, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, max_det]),
        helper.make_tensor_value_info("classes", TensorProto.INT32, [batch, max_det]),
    ])
