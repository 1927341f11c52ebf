"""The files the hostile-input suite feeds the tools: a small valid model and its exports, photos,
a labelled set, and bad files of every kind the tools read. Built once per test session."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

SIZE = "64"  # every model runs at 64x64: the cases test refusals, not accuracy


def build(folder: Path) -> dict[str, Path]:
    """name -> path of every input the cases use (all inside ``folder``)."""
    import cv2
    import onnx
    from helpers import random_model

    from yolov3_trt.data.synthetic import generate
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.checkpoint import save_checkpoint
    from yolov3_trt.names import COCO_NAMES

    f: dict[str, Path] = {}
    model = random_model(folder, "yolov3-tiny")
    f["weights"] = folder / "yolov3-tiny.weights"
    photos = folder / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        cv2.imwrite(str(photos / f"{name}.jpg"), rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    f["photos"], f["photo"] = photos, photos / "a.jpg"
    f["onnx"] = folder / "raw.onnx"
    export_onnx(model, f["onnx"], COCO_NAMES, size=(64, 64))
    f["end2end"] = folder / "end2end.onnx"
    export_onnx(model, f["end2end"], COCO_NAMES, flavour="end2end", size=(64, 64))
    f["checkpoint"] = folder / "model.pt"
    save_checkpoint(f["checkpoint"], model, COCO_NAMES)
    f["data"] = folder / "data"
    generate(f["data"], 6, size=64, seed=0, val_fraction=0.5)
    # bad files
    f["empty"] = folder / "empty.bin"
    f["empty"].write_bytes(b"")
    f["garbage"] = folder / "garbage.bin"
    f["garbage"].write_bytes(rng.integers(0, 255, 4096, dtype=np.uint8).tobytes())
    f["text_jpg"] = folder / "notes.jpg"
    f["text_jpg"].write_text("not a picture")
    data = f["photo"].read_bytes()
    f["half_jpg"] = folder / "half.jpg"
    f["half_jpg"].write_bytes(data[: len(data) // 3])
    f["empty_folder"] = folder / "nothing"
    f["empty_folder"].mkdir()
    f["text_folder"] = folder / "texts"
    f["text_folder"].mkdir()
    (f["text_folder"] / "a.txt").write_text("hello")
    (f["text_folder"] / "b.jpg").write_text("hello")
    weights = f["weights"].read_bytes()
    f["truncated_weights"] = folder / "truncated.weights"
    f["truncated_weights"].write_bytes(weights[:-1000])
    f["oversized_weights"] = folder / "oversized.weights"
    f["oversized_weights"].write_bytes(weights + bytes(16))
    f["header_only"] = folder / "header.weights"
    f["header_only"].write_bytes(weights[:20])
    cfg = (folder / "tiny.cfg")
    from yolov3_trt.darknet.builtin import load_cfg
    from yolov3_trt.darknet.cfg import write_cfg

    write_cfg(load_cfg("yolov3-tiny"), cfg)
    f["cfg"] = cfg
    text = cfg.read_text()
    for name, bad in {"bad_filters": text.replace("filters=255", "filters=250", 1),
                      "unknown_option": text.replace("[maxpool]", "[maxpool]\nwobble=3", 1),
                      "unknown_section": text + "\n[teleport]\nsize=3\n",
                      "bad_route": text.replace("layers=-4", "layers=-400", 1),
                      "huge_width": text.replace("width=416", "width=99999968", 1),
                      "huge_filters": text.replace("filters=16", "filters=2000000000", 1)}.items():
        f[f"cfg_{name}"] = folder / f"{name}.cfg"
        f[f"cfg_{name}"].write_text(bad)
    f["cfg_binary"] = folder / "binary.cfg"
    f["cfg_binary"].write_bytes(b"\xff\xfe\x00[net]\x00\x81")
    f["names_two"] = folder / "two.names"
    f["names_two"].write_text("a\nb\n")
    f["pickle_bomb"] = folder / "evil.pt"
    f["pickle_bomb"].write_bytes(pickle.dumps(_Evil()))
    f["not_ours_pt"] = folder / "other.pt"
    import torch
    torch.save({"state": {"x": torch.zeros(2)}}, f["not_ours_pt"])
    f["engine"] = folder / "model.engine"
    f["engine"].write_bytes(b"TRT plan bytes that no sidecar describes")
    f["engine_bad_sidecar"] = folder / "broken.engine"
    f["engine_bad_sidecar"].write_bytes(b"plan")
    (folder / "broken.engine.json").write_text("{not json")
    f["no_metadata_onnx"] = folder / "plain.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 64, 64])])
    onnx.save(onnx.helper.make_model(graph), str(f["no_metadata_onnx"]))
    f["video_garbage"] = folder / "clip.mp4"
    f["video_garbage"].write_bytes(rng.integers(0, 255, 20000, dtype=np.uint8).tobytes())
    unicode = folder / "фото"
    unicode.mkdir()
    (unicode / "собака.jpg").write_bytes(f["photo"].read_bytes())
    f["unicode_photo"] = unicode / "собака.jpg"
    f["file_as_folder"] = folder / "plainfile"
    f["file_as_folder"].write_text("I am a file")
    return f


class _Evil:
    """A pickle that would run a command when loaded without weights_only."""

    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /tmp/yolov3_trt_pwned",))


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (what must not change)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
