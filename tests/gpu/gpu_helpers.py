"""Helpers shared by the GPU tests (tests/gpu/) and the device check.

Nothing here imports pytest or the tests' conftest, so ``device_check.py`` (a plain script) uses
it too. What is here:

- images the project makes itself (:func:`scene_images`: the procedural shapes generator), so
  no GPU test needs ``../shared`` or the network;
- order-free comparisons of detections (:func:`same_plugin_detections` for the plugin's
  fixed-size outputs, :func:`detection_set_problem` for :class:`~yolov3_trt.Detections`);
- a tie-tolerant check that detections are a greedy per-class NMS of given candidates
  (:func:`nms_problem`, candidates from :func:`candidates_from_heads`): how an engine is compared
  with ONNX Runtime when random weights give many (nearly) equal scores;
- a hand-built end2end model whose candidates score what its input says (:func:`tie_model`,
  :func:`tie_input`): candidates scoring exactly ``conf`` show whether an NMS keeps ``>=``;
- YOLO heads of the built-in models (:func:`model_heads`; :func:`model_decode`, the
  :class:`~yolov3_trt.specs.DecodeSpec` the post-processors take) and random head tensors
  (:func:`random_heads`, the same distributions as tests/plugin/plugin_cases.py).

The decode + NMS kernel launched from its PTX with cuda-python's driver API is in gpu_kernel.py
beside this file.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

# ---- images ------------------------------------------------------------------------------------

# (width, height): landscape, square, portrait and small images, so the letterbox is exercised
SCENE_SIZES = ((640, 480), (416, 416), (500, 375), (375, 500), (800, 600), (320, 240))
SCENE_SEED = 2024


def scene_images(count: int = 6, seed: int = SCENE_SEED) -> list[np.ndarray]:
    """``count`` BGR uint8 images of the procedural shapes set (deterministic per seed and index)."""
    from yolov3_trt.data.synthetic import render_image

    return [render_image(seed, i, SCENE_SIZES[i % len(SCENE_SIZES)]).image for i in range(count)]


# ---- comparing detections ----------------------------------------------------------------------

def _rows(boxes, scores, classes):
    """One image's detections sorted by class, then box (x1, y1 rounded to 0.01 px), then score."""
    boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
    order = np.lexsort((-scores, np.round(boxes[:, 1], 2), np.round(boxes[:, 0], 2), classes))
    return boxes[order], scores[order], classes[order]


def same_plugin_detections(gpu, cpu) -> None:
    """AssertionError unless two plugin outputs (num_dets, boxes, scores, classes) keep the same
    detections per image. Order may differ only where scores tie within an ulp: CUDA's double
    exp/log are not guaranteed to round like glibc's, which can swap two (box, class) pairs of
    (nearly) equal score, so each image's rows are compared sorted by class and box."""
    np.testing.assert_array_equal(gpu[0], cpu[0])
    for b, n in enumerate(cpu[0][:, 0]):
        rows = [_rows(out[1][b, :n], out[2][b, :n], out[3][b, :n]) for out in (gpu, cpu)]
        np.testing.assert_array_equal(rows[0][2], rows[1][2], err_msg=f"image {b}: classes")
        np.testing.assert_allclose(rows[0][1], rows[1][1], rtol=1e-6, err_msg=f"image {b}: scores")
        np.testing.assert_allclose(rows[0][0], rows[1][0], rtol=1e-6, atol=1e-4, err_msg=f"image {b}: boxes")
        np.testing.assert_array_equal(gpu[3][b, n:], -1)  # unused slots as the host build leaves them
        np.testing.assert_array_equal(cpu[3][b, n:], -1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a (N, 4)`` and ``b (M, 4)``."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def detection_set_problem(a, b, *, min_iou: float = 0.5, max_box_diff: float | None = None,
                          max_score_diff: float = 1e-3) -> str | None:
    """Why two images' detections (objects with ``boxes``, ``scores``, ``class_ids``) differ as
    sets, or None when they are the same: equal counts, and a one-to-one pairing of same-class
    detections with IoU >= ``min_iou``, box corners within ``max_box_diff`` pixels (when given)
    and scores within ``max_score_diff``. Order-free: detections are paired by IoU (after NMS,
    same-class boxes overlap little, so a box's twin is the one it overlaps most), never by their
    position in the list, which ties can change."""
    if len(a.boxes) != len(b.boxes):
        return f"{len(a.boxes)} detections vs {len(b.boxes)}"
    for cls in np.union1d(a.class_ids, b.class_ids):
        ia, ib = np.flatnonzero(a.class_ids == cls), np.flatnonzero(b.class_ids == cls)
        if len(ia) != len(ib):
            return f"class {int(cls)}: {len(ia)} detections vs {len(ib)}"
        iou = iou_matrix(a.boxes[ia], b.boxes[ib])
        best = iou.argmax(axis=1)
        if len(set(best.tolist())) != len(best):
            return f"class {int(cls)}: detections do not pair one to one"
        worst = float(iou[np.arange(len(ia)), best].min())
        if worst < min_iou:
            return f"class {int(cls)}: a paired box has IoU {worst:.4f} < {min_iou}"
        if max_box_diff is not None:
            corner = float(np.abs(a.boxes[ia] - b.boxes[ib][best]).max())
            if corner > max_box_diff:
                return f"class {int(cls)}: paired box corners differ by {corner:.3f} px > {max_box_diff}"
        diff = float(np.abs(a.scores[ia] - b.scores[ib][best]).max())
        if diff > max_score_diff:
            return f"class {int(cls)}: paired scores differ by {diff:.2e} > {max_score_diff}"
    return None


def candidates_from_heads(outputs, decode_spec):
    """Per image, every (box, class) pair of raw head outputs: ``(boxes (N, 4) xyxy network pixels,
    scores (N, C) = sigmoid(obj) * sigmoid(cls) float32)``, decoded by the numpy reference with
    ``decode_spec`` (a :class:`~yolov3_trt.specs.DecodeSpec`)."""
    from yolov3_trt.postprocess import decode

    boxes, objectness, class_probs = decode(outputs, decode_spec)
    scores = (objectness[:, :, None] * class_probs).astype(np.float32)
    return [(boxes[b], scores[b]) for b in range(len(boxes))]


def onnxruntime_candidates(raw_onnx, blob: np.ndarray, decode_spec):
    """:func:`candidates_from_heads` of a raw ONNX run on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(raw_onnx), providers=["CPUExecutionProvider"])
    return candidates_from_heads(session.run(None, {session.get_inputs()[0].name: blob}), decode_spec)


def output_rows(outputs, flavour: str, decode_spec, *, conf: float, iou: float, max_det: int,
                top_k: int | None) -> list:
    """Per image, a model's detections in network pixels: an end2end/plugin graph's NMS outputs,
    or a raw graph's heads through the numpy reference post-processing (``decode_spec``, a
    :class:`~yolov3_trt.specs.DecodeSpec`, and these thresholds)."""
    from yolov3_trt.postprocess import postprocess
    from yolov3_trt.specs import NmsSpec

    if flavour != "raw":
        return [end2end_rows(outputs, b) for b in range(len(outputs[0]))]
    return [SimpleNamespace(boxes=boxes, scores=scores, class_ids=classes) for boxes, scores, classes in
            postprocess(outputs, decode_spec, NmsSpec(conf=conf, iou=iou, max_det=max_det, pre_nms_top_k=top_k))]


def nms_problem(kept, candidates, *, conf: float, iou: float, max_det: int, top_k: int | None = None,
                score_tol: float = 2e-3, min_iou: float = 0.98, iou_tol: float | None = None) -> str | None:
    """Why ``kept`` (an object with ``boxes`` xyxy, ``scores``, ``class_ids``) is not a greedy
    per-class NMS of ``candidates`` (``(boxes (N, 4), scores (N, C))``, as from
    :func:`candidates_from_heads`) within tolerances, or None when it is one.

    Two runtimes' detections cannot be compared one to one when many candidates score (nearly)
    the same, as random weights make them: a rounding difference reorders ties, and NMS and the
    ``max_det`` cut then keep other, equally right boxes. What must hold whatever the order:

    1. every kept detection is a candidate: same class, box IoU >= ``min_iou``, score within
       ``score_tol``, and above ``conf`` (within ``score_tol``);
    2. kept detections of one class overlap at most ``iou + iou_tol``; at most ``max_det`` kept;
    3. every candidate above ``conf + score_tol`` that is not kept is explained: a kept detection of
       its class scoring at least its score minus ``score_tol`` overlaps it by more than
       ``iou - iou_tol`` (NMS suppressed it), or the output is full (``max_det`` kept) and it scores
       at most the lowest kept score plus ``score_tol`` (the cut), or it is not among the
       ``top_k`` best candidates (within ``score_tol``; the pre-NMS cut).

    ``iou_tol`` defaults to ``1 - min_iou + 0.01`` (boxes that moved by that much move IoUs too).
    """
    boxes, scores = np.asarray(candidates[0], np.float32), np.asarray(candidates[1], np.float32)
    kb = np.asarray(kept.boxes, np.float32).reshape(-1, 4)
    ks = np.asarray(kept.scores, np.float32).reshape(-1)
    kc = np.asarray(kept.class_ids).reshape(-1)
    iou_tol = 1.0 - min_iou + 0.01 if iou_tol is None else iou_tol
    if len(kb) > max_det:
        return f"{len(kb)} detections kept, more than max_det {max_det}"
    flat = scores.reshape(-1)
    kth = None
    if top_k is not None and flat.size > top_k:
        kth = float(np.partition(flat, flat.size - top_k)[flat.size - top_k])  # the top_k-th best score
    for i in range(len(kb)):
        if not 0 <= kc[i] < scores.shape[1]:
            return f"detection {i} has class {int(kc[i])}, outside 0..{scores.shape[1] - 1}"
        if ks[i] <= conf - score_tol:
            return f"detection {i} (class {int(kc[i])}) scores {ks[i]:.5f}, not above conf {conf}"
        column = scores[:, kc[i]]
        near = np.flatnonzero(np.abs(column - ks[i]) <= score_tol)
        if not len(near) or iou_matrix(kb[i:i + 1], boxes[near]).max() < min_iou:
            return (f"detection {i} (class {int(kc[i])}, score {ks[i]:.5f}, box {np.round(kb[i], 1).tolist()}) "
                    f"is no candidate (none of its class within {score_tol} in score and IoU {min_iou})")
    for cls in np.unique(kc):
        same = kb[kc == cls]
        overlap = iou_matrix(same, same) - np.eye(len(same)) * 2
        if len(same) > 1 and overlap.max() > iou + iou_tol:
            return f"two kept detections of class {int(cls)} overlap by IoU {overlap.max():.3f} > {iou}"
    full = len(kb) == max_det
    lowest = float(ks.min()) if len(ks) else 1.0
    rows, classes = np.nonzero(scores > conf + score_tol)
    for cls in np.unique(classes):
        pick = rows[classes == cls]
        s = scores[pick, cls]
        explained = np.zeros(len(pick), bool)
        if full:
            explained |= s <= lowest + score_tol
        if kth is not None:
            explained |= s <= kth + score_tol
        mine = kc == cls
        if mine.any():
            overlap = iou_matrix(boxes[pick], kb[mine]) > iou - iou_tol
            stronger = ks[mine][None, :] >= s[:, None] - score_tol
            explained |= (overlap & stronger).any(axis=1)
        if not explained.all():
            j = int(np.flatnonzero(~explained)[np.argmax(s[~explained])])
            return (f"candidate of class {int(cls)} with score {s[j]:.5f} and box "
                    f"{np.round(boxes[pick[j]], 1).tolist()} is neither kept nor suppressed by a kept box "
                    f"(nor cut by max_det {max_det} or top_k {top_k})")
    return None


def end2end_rows(outputs, b: int):
    """Image ``b`` of an end2end graph's outputs (num_dets, boxes, scores, classes) as an object
    with ``boxes``, ``scores`` and ``class_ids``."""
    num_dets, boxes, scores, classes = outputs
    n = int(num_dets[b, 0])
    return SimpleNamespace(boxes=boxes[b, :n], scores=scores[b, :n], class_ids=classes[b, :n])


def detection_key(cls, box) -> tuple:
    """A detection's identity across runtimes: class and box (rounded to 1e-3 px)."""
    return int(cls), tuple(np.round(np.asarray(box, np.float64), 3).tolist())


def detection_keys(outputs, b: int) -> dict[tuple, float]:
    """Image ``b`` of end2end outputs as {detection_key: score}."""
    rows = end2end_rows(outputs, b)
    return {detection_key(c, box): float(s) for box, s, c in zip(rows.boxes, rows.scores, rows.class_ids)}


# ---- a model whose scores the input sets ---------------------------------------------------------

TIE_GRID, TIE_CLASSES, TIE_STRIDE, TIE_ANCHOR, TIE_SIZE = 4, 3, 16, (12.0, 12.0), 64
TIE_CHANNELS = 5 + TIE_CLASSES
TIE_CANDIDATES = TIE_GRID * TIE_GRID * TIE_CLASSES
TIE_CONF = 0.25  # sigmoid(0) * sigmoid(0): exactly 0.25 in float32 wherever sigmoid(0) is exactly 0.5


def tie_model(path, conf: float):
    """Write an end2end ONNX whose one head (3 classes, one 12x12 anchor, a 4x4 grid at 64x64) is
    the input's first 128 values, so the input says what every candidate scores; returns ``path``.
    Built from onnx ops and the project's own ``append_end2end`` (what ``export --flavour
    end2end`` appends), with the metadata ``build`` and the backends read."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from yolov3_trt.export.end2end import append_end2end
    from yolov3_trt.metadata import ModelMetadata
    from yolov3_trt.specs import DecodeSpec, NmsSpec

    count = TIE_CHANNELS * TIE_GRID * TIE_GRID
    constants = [numpy_helper.from_array(np.asarray(v, np.int64), name) for name, v in (
        ("flat_shape", [0, -1]), ("start", [0]), ("end", [count]), ("axis", [1]),
        ("head_shape", [-1, TIE_CHANNELS, TIE_GRID, TIE_GRID]))]
    nodes = [helper.make_node("Reshape", ["images", "flat_shape"], ["flat"]),
             helper.make_node("Slice", ["flat", "start", "end", "axis"], ["logits"]),
             helper.make_node("Reshape", ["logits", "head_shape"], ["head0"])]
    graph = helper.make_graph(
        nodes, "score_tie",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, TIE_SIZE, TIE_SIZE])],
        [helper.make_tensor_value_info("head0", TensorProto.FLOAT, ["batch", TIE_CHANNELS, TIE_GRID, TIE_GRID])],
        constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="yolov3_trt tests")
    model.ir_version = 8  # what ONNX Runtime >= 1.14 and TensorRT's parser read
    decode = DecodeSpec.from_grids([(TIE_ANCHOR,)], [(TIE_GRID, TIE_GRID)], TIE_CLASSES, (TIE_SIZE, TIE_SIZE))
    append_end2end(model, decode, NmsSpec(conf=conf, iou=0.45, max_det=TIE_CANDIDATES, pre_nms_top_k=TIE_CANDIDATES))
    meta = ModelMetadata(flavour="end2end", input_size=(TIE_SIZE, TIE_SIZE), names=("a", "b", "c"),
                         anchors=((TIE_ANCHOR,),), strides=((TIE_STRIDE, TIE_STRIDE),), conf=conf, iou=0.45,
                         max_det=TIE_CANDIDATES, pre_nms_top_k=TIE_CANDIDATES)
    for key, value in meta.to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def tie_input(batch: int = 2):
    """(input for :func:`tie_model`, per image the detection keys of the candidates scoring exactly
    TIE_CONF). Per image: objectness logit 0 or 2 by cell, class logits 0, 3 or -3, box terms 0
    (12 px boxes centred on their 16 px cells: NMS suppresses nothing). Scores: 0.25 (the ties),
    0.44, 0.48, 0.84 above, 0.02 and 0.04 below; 8 ties, 24 clearly above per image."""
    blob = np.zeros((batch, 3, TIE_SIZE, TIE_SIZE), np.float32)
    ties: list[set] = []
    cells = np.arange(TIE_GRID * TIE_GRID)
    half = TIE_ANCHOR[0] / 2
    for b in range(batch):
        head = np.zeros((TIE_CHANNELS, len(cells)), np.float32)
        head[4] = np.where((cells + b) % 2 == 0, 0.0, 2.0)
        ties.append(set())
        for c in range(TIE_CLASSES):
            head[5 + c] = np.asarray([0.0, 3.0, -3.0], np.float32)[(cells + c + b) % 3]
            for cell in np.flatnonzero((head[4] == 0) & (head[5 + c] == 0)):
                cx, cy = (cell % TIE_GRID + 0.5) * TIE_STRIDE, (cell // TIE_GRID + 0.5) * TIE_STRIDE
                ties[b].add(detection_key(c, (cx - half, cy - half, cx + half, cy + half)))
        blob.reshape(batch, -1)[b, :head.size] = head.ravel()
    return blob, ties


# ---- heads ---------------------------------------------------------------------------------------

def model_heads(cfg: str, size: tuple[int, int] = (416, 416)):
    """(heads, grids (W, H)) of a built-in cfg (``yolov3``, ``yolov3-tiny``, ...) at ``size`` (w, h)."""
    from yolov3_trt.darknet.builtin import load_cfg
    from yolov3_trt.darknet.layers import build_network

    network = build_network(load_cfg(cfg))
    shapes = network.shapes(*size)
    heads = network.heads()
    return heads, [(shapes[h.layer].output[2], shapes[h.layer].output[1]) for h in heads]


def model_decode(cfg: str, size: tuple[int, int] = (416, 416)):
    """The :class:`~yolov3_trt.specs.DecodeSpec` of a built-in cfg at ``size`` (w, h): what
    ``YoloV3.decode_spec(size)`` gives, without torch."""
    from yolov3_trt.specs import DecodeSpec

    heads, grids = model_heads(cfg, size)
    return DecodeSpec.from_grids([h.anchors for h in heads], grids, heads[0].classes, size)


def network_bflops(cfg: str, size: tuple[int, int] = (416, 416)) -> float:
    """Darknet's BFLOPs of a built-in cfg at ``size`` (yolov3 at 416: 65.864)."""
    from yolov3_trt.darknet.builtin import load_cfg
    from yolov3_trt.darknet.layers import build_network

    return sum(s.bflops for s in build_network(load_cfg(cfg)).shapes(*size))


def random_heads(rng: np.random.Generator, batch: int, heads, grids, *, obj_mean: float = -4.0,
                 cls_mean: float = -2.0, spread: float = 2.0, tie_step: float | None = None,
                 fp16: bool = False) -> list[np.ndarray]:
    """One ``(B, A*(5+C), H, W)`` tensor per head: box terms ~N(0, 1), objectness and class logits
    ~N(mean, spread), as tests/plugin/plugin_cases.py makes them. ``tie_step`` rounds the logits
    to multiples of it (many exactly equal scores); ``fp16`` returns float16 arrays."""
    outputs = []
    for head, (gw, gh) in zip(heads, grids):  # grids (W, H), as everywhere
        anchors, classes = len(head.anchors), head.classes
        out = rng.normal(0.0, 1.0, (batch, anchors, 5 + classes, gh, gw)).astype(np.float32)
        out[:, :, 4] = rng.normal(obj_mean, spread, (batch, anchors, gh, gw))
        out[:, :, 5:] = rng.normal(cls_mean, spread, (batch, anchors, classes, gh, gw))
        if tie_step:
            out[:, :, 4:] = np.round(out[:, :, 4:] / tie_step) * tie_step
        out = out.reshape(batch, anchors * (5 + classes), gh, gw)
        outputs.append(out.astype(np.float16) if fp16 else out)
    return outputs

