"""Writes decode_nms_golden.npz: raw heads of a tiny model and the detections decode + NMS must give.

    python tests/plugin/golden/make_golden.py      # rewrites the file beside this script

The file holds ``attributes`` (JSON: the plugin node attributes, so ``config_from_attributes``
rebuilds the config), ``head0``/``head1`` (float32, ``(B, A*(5+C), grid_h, grid_w)``) and the
expected ``num_dets`` (B, 1), ``boxes`` (B, K, 4), ``scores`` (B, K), ``classes`` (B, K) in the
plugin's fixed-size layout (slots past ``num_dets``: zero boxes and scores, class -1), computed
with the numpy reference ``yolov3_trt.postprocess.postprocess``. Deterministic: a fixed seed, and
the arrays do not depend on the machine.

The tiny model: input 96x64 (not square, so a (W, H) / (H, W) mix-up shows), heads at strides 32
and 16 (grids 3x2 and 6x4), 3 anchors each, 3 classes, batch 2; conf 0.3, iou 0.5, max_det 16,
pre_nms_top_k 24. Image 0 has more candidates than the top-K and more survivors than max_det (both
cuts act); image 1 has fewer than max_det (padded slots). Logits are rounded to steps of 0.5, so
many scores tie exactly (ties broken by the lower candidate index). Both images hold a planted
pair of one class at one cell with IoU 0.89 (the weaker is suppressed), and image 0 a pair whose
IoU is exactly 0.5 = iou: both are kept under "suppress if IoU > iou", the weaker goes under ">=".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "decode_nms_golden.npz"
INPUT_SIZE = (96, 64)
STRIDES = ((32, 32), (16, 16))
ANCHORS = (((16.0, 16.0), (16.0, 8.0), (40.0, 30.0)), ((8.0, 8.0), (12.0, 20.0), (24.0, 12.0)))
CLASSES, BATCH = 3, 2
NMS = {"conf": 0.3, "iou": 0.5, "max_det": 16, "pre_nms_top_k": 24}
PLANTED = {"head": 0, "cell": (1, 0), "anchors": (0, 1), "class": 1}  # cell (cx, cy)
OVERLAP = {"head": 0, "cell": (0, 1), "class": 2}  # anchors 0 and 2 made 16x16 and 16x18: IoU 0.89


def decode_spec():
    from yolov3_trt.specs import DecodeSpec

    return DecodeSpec.from_strides(ANCHORS, STRIDES, CLASSES, INPUT_SIZE)


def make_heads(seed: int = 14) -> list[np.ndarray]:
    """The raw heads: random logits in steps of 0.5, plus the planted exact-IoU pair in image 0."""
    rng = np.random.default_rng(seed)
    heads = []
    for head in decode_spec().heads:
        gw, gh = head.grid
        out = np.round(rng.normal(0.0, 0.5, (BATCH, 3, 5 + CLASSES, gh, gw)) * 4) / 4
        out[:, :, 4:] = np.round(rng.normal(-0.5, 2.0, (BATCH, 3, 1 + CLASSES, gh, gw)) * 2) / 2
        out[1, :, 4] -= 2.5                                        # image 1: few candidates, padded slots
        heads.append(out.astype(np.float32))
    overlap = heads[OVERLAP["head"]]
    cx, cy = OVERLAP["cell"]
    for b in range(BATCH):
        for anchor, logit, size in ((0, 5.0, (16.0, 16.0)), (2, 4.5, (16.0, 18.0))):
            w, h = ANCHORS[OVERLAP["head"]][anchor]
            overlap[b, anchor, :4, cy, cx] = (0.0, 0.0, np.log(size[0] / w), np.log(size[1] / h))
            overlap[b, anchor, 4, cy, cx] = 6.0
            overlap[b, anchor, 5:, cy, cx] = -6.0
            overlap[b, anchor, 5 + OVERLAP["class"], cy, cx] = logit
    planted = heads[PLANTED["head"]]
    cx, cy = PLANTED["cell"]
    for anchor, logit in zip(PLANTED["anchors"], (5.0, 4.0)):
        planted[0, anchor, :4, cy, cx] = 0.0                   # centred, exactly the anchor's size
        planted[0, anchor, 4, cy, cx] = 6.0
        planted[0, anchor, 5:, cy, cx] = -6.0
        planted[0, anchor, 5 + PLANTED["class"], cy, cx] = logit
    return [h.reshape(BATCH, 3 * (5 + CLASSES), h.shape[3], h.shape[4]) for h in heads]


def fixed_size(detections, max_det: int):
    """Per-image (boxes, scores, classes) -> the plugin's num_dets, boxes, scores, classes arrays."""
    num_dets = np.zeros((len(detections), 1), np.int32)
    boxes = np.zeros((len(detections), max_det, 4), np.float32)
    scores = np.zeros((len(detections), max_det), np.float32)
    classes = np.full((len(detections), max_det), -1, np.int32)
    for b, (bx, sc, cl) in enumerate(detections):
        n = len(sc)
        num_dets[b, 0], boxes[b, :n], scores[b, :n], classes[b, :n] = n, bx, sc, cl
    return num_dets, boxes, scores, classes


def expected(heads: list[np.ndarray], **nms) -> tuple[np.ndarray, ...]:
    """The numpy reference's detections in the plugin's layout."""
    from yolov3_trt.postprocess import postprocess
    from yolov3_trt.specs import NmsSpec

    settings = NmsSpec(**{**NMS, **nms})
    return fixed_size(postprocess(heads, decode_spec(), settings), settings.max_det)


def attributes() -> dict:
    from yolov3_trt.plugin.params import PluginConfig
    from yolov3_trt.plugin.trt_plugin import node_attributes
    from yolov3_trt.specs import NmsSpec

    return node_attributes(PluginConfig(decode_spec(), NmsSpec(**NMS)))


def make() -> dict[str, np.ndarray]:
    heads = make_heads()
    num_dets, boxes, scores, classes = expected(heads)
    return {"attributes": np.asarray(json.dumps(attributes(), sort_keys=True)), "head0": heads[0], "head1": heads[1],
            "num_dets": num_dets, "boxes": boxes, "scores": scores, "classes": classes}


def main() -> None:
    np.savez_compressed(GOLDEN, **make())
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
