"""ONNX export: raw heads equal PyTorch, end2end equals the reference post-processing."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import DARKNET

from yolov3_trt.cli.common import run
from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.errors import YoloV3TrtError
from yolov3_trt.export import onnx_export
from yolov3_trt.export.__main__ import main as export_main
from yolov3_trt.export.onnx_export import export_onnx, fuse_batchnorm, supported_opsets
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.postprocess import DEFAULT_PRE_NMS_TOP_K, postprocess
from yolov3_trt.preprocess import preprocess, read_image
from yolov3_trt.specs import NmsSpec

PHOTOS = ["dog", "horses", "person"]


def realistic_model(name: str, tmp_path, seed: int = 0) -> YoloV3:
    """A model with random weights whose heads behave like a trained detector's."""
    model = YoloV3.from_cfg(name).eval()
    path = tmp_path / f"{name}.weights"
    write_darknet_weights(path, model.network, random_darknet_weights(model.network, seed, head_gain=0.15))
    return model.load_darknet_weights(path)


def photo_blob(size):
    return preprocess([read_image(DARKNET / "images" / f"{n}.jpg") for n in PHOTOS], size)[0]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["yolov3", "yolov3-tiny", "yolov3-spp"])
def test_raw_onnx_equals_torch(name, tmp_path):
    model = realistic_model(name, tmp_path)
    path = tmp_path / "raw.onnx"
    export_onnx(model, path, COCO_NAMES, size=(320, 320))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    blob = photo_blob((320, 320))
    got = session(path).run(None, {"images": blob})   # batch 3 through a dynamic batch axis
    with torch.no_grad():
        expected = [t.numpy() for t in model(torch.from_numpy(blob))]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        assert np.abs(g - e).max() / np.abs(e).max() <= 1e-4


def test_fused_batchnorm_is_the_same_function(tmp_path):
    model = realistic_model("yolov3-tiny", tmp_path)
    x = torch.rand(2, 3, 128, 160)
    with torch.no_grad():
        for a, b in zip(model(x), fuse_batchnorm(model)(x)):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, size", [("yolov3-tiny", (416, 416)), ("yolov3", (320, 256))])
def test_end2end_equals_reference_postprocess(name, size, tmp_path):
    model = realistic_model(name, tmp_path, seed=4)
    path = tmp_path / "e2e.onnx"
    conf, iou, max_det = 0.3, 0.45, 50
    export_onnx(model, path, COCO_NAMES, flavour="end2end", size=size, conf=conf, iou=iou, max_det=max_det)
    blob = photo_blob(size)
    num, boxes, scores, classes = session(path).run(None, {"images": blob})
    assert num.dtype == np.int32 and num.shape == (3, 1)
    assert boxes.shape == (3, max_det, 4) and scores.shape == (3, max_det) and classes.dtype == np.int32
    with torch.no_grad():
        raw = [t.numpy() for t in model(torch.from_numpy(blob))]
    reference = postprocess(raw, model.decode_spec(size), NmsSpec(conf, iou, max_det, DEFAULT_PRE_NMS_TOP_K))
    for b, (ref_boxes, ref_scores, ref_classes) in enumerate(reference):
        n = int(num[b, 0])
        assert n == len(ref_scores) > 0
        np.testing.assert_array_equal(classes[b, :n], ref_classes)
        np.testing.assert_allclose(scores[b, :n], ref_scores, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(boxes[b, :n], ref_boxes, rtol=1e-4, atol=1e-2)
        # padding past num_dets, as EfficientNMS consumers expect nothing there
        assert (classes[b, n:] == -1).all() and (scores[b, n:] == 0).all() and (boxes[b, n:] == 0).all()


def test_end2end_with_no_detections(tmp_path):
    model = realistic_model("yolov3-tiny", tmp_path)
    path = tmp_path / "e2e.onnx"
    export_onnx(model, path, COCO_NAMES, flavour="end2end", size=(160, 160), conf=0.999, max_det=10)
    num, boxes, scores, classes = session(path).run(None, {"images": photo_blob((160, 160))})
    assert (num == 0).all() and (classes == -1).all()


def test_metadata_round_trips(tmp_path):
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=2,
                            anchors=[(5, 6), (7, 8), (9, 10), (20, 30), (40, 50), (60, 70)])
    path = tmp_path / "m.onnx"
    written = export_onnx(model, path, ["robot", "cone"], size=(256, 192), batch=2, weights_sha256="ab" * 32,
                          source="x.weights")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    read = ModelMetadata.from_props(props, path)
    assert read == written
    assert read.input_size == (256, 192) and read.names == ("robot", "cone")
    assert read.anchors == (((20.0, 30.0), (40.0, 50.0), (60.0, 70.0)), ((5.0, 6.0), (7.0, 8.0), (9.0, 10.0)))
    assert read.strides == ((32, 32), (16, 16)) and read.weights_sha256 == "ab" * 32
    assert "[yolo]" in read.cfg
    sess = session(path)
    assert ModelMetadata.from_props(sess.get_modelmeta().custom_metadata_map, path) == written
    assert sess.get_inputs()[0].shape == [2, 3, 192, 256]


def test_export_cli(tmp_path, capsys):
    model = realistic_model("yolov3-tiny", tmp_path)
    weights = tmp_path / "yolov3-tiny.weights"
    out = tmp_path / "out.onnx"
    assert run(export_main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "320",
                             "--flavour", "end2end", "--conf", "0.4", "--output", str(out)]) == 0
    assert "end2end, input 320x320" in capsys.readouterr().out
    meta = ModelMetadata.from_props(session(out).get_modelmeta().custom_metadata_map, out)
    assert meta.conf == 0.4 and meta.flavour == "end2end" and meta.source == "yolov3-tiny.weights"
    assert len(meta.weights_sha256) == 64
    del model


@pytest.mark.parametrize("argv, words", [
    (["--cfg", "yolov3-tiny", "--weights", "nope.weights"], "nope.weights: no such weights file"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--conf", "0.3"], "baked in only with --flavour end2end"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--flavour", "end2end", "--max-det", "5000"], "max_det=5000"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--opset", "13"], "opset 13 is not supported: yolov3_trt exports "
                                                                     "opset 17 to"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--opset", "99"], "opset 99 is not supported"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--opset", str(supported_opsets()[-1] + 1)], "is not supported"),
    (["--cfg", "yolov3", "--weights", "{w}", "--size", "99999968"], "argument --size: '99999968': each side must be "
                                                                    "at most 8192 px"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--size", "100"], "argument --size: '100': width and height must"),
    (["--cfg", "{big_cfg}", "--weights", "{w}"], "big.cfg:2: [net] width=99999968 must be <= 8192 px"),
    (["--cfg", "{wide_cfg}", "--weights", "{w}"], "wide.cfg:4: layer 0 [convolutional] at input 64x64: weights "
                                                  "2000000000x3x3x3"),
    (["--cfg", "yolov3-tiny", "--weights", "{w}", "--classes", "1000000000"], "values exceed 2,147,483,647"),
])
def test_export_cli_errors(argv, words, tmp_path, capsys):
    realistic_model("yolov3-tiny", tmp_path)
    weights = str(tmp_path / "yolov3-tiny.weights")
    out = tmp_path / "out.onnx"
    (tmp_path / "big.cfg").write_text("[net]\nwidth=99999968\nheight=416\n[convolutional]\n")
    (tmp_path / "wide.cfg").write_text("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=2000000000\nsize=3\n")
    argv = [a.replace("{w}", weights).replace("{big_cfg}", str(tmp_path / "big.cfg"))
            .replace("{wide_cfg}", str(tmp_path / "wide.cfg")) for a in argv] + ["--output", str(out)]
    try:
        code = run(export_main, argv)
    except SystemExit as exit_:  # argparse refused the flag (one line too: yolov3_trt.cli.common.ArgumentParser)
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert list(tmp_path.glob("*.onnx")) == [] and list(tmp_path.glob(".*")) == []


def test_supported_opsets_are_the_installed_exporters():
    import torch.onnx._constants as torch_onnx

    opsets = supported_opsets()
    assert opsets[0] == 17 and opsets[-1] == min(torch_onnx.ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())


@pytest.mark.parametrize("opset", [16, supported_opsets()[-1] + 1, 99, "17", 17.0, True])
def test_export_refuses_opsets_outside_the_range_before_tracing(opset, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("traced"))
    with pytest.raises(YoloV3TrtError, match=r"opset .* is not supported: yolov3_trt exports opset 17 to \d+ here"):
        export_onnx(YoloV3.from_cfg("yolov3-tiny"), tmp_path / "m.onnx", COCO_NAMES, opset=opset)
    assert not list(tmp_path.iterdir())


def test_newest_supported_opset_exports_and_runs(tmp_path):
    path = tmp_path / "newest.onnx"
    model = YoloV3.from_cfg("yolov3-tiny").eval()
    export_onnx(model, path, COCO_NAMES, size=(64, 64), opset=supported_opsets()[-1], flavour="end2end")
    assert onnx.load(str(path)).opset_import[0].version == supported_opsets()[-1]
    assert len(session(path).run(None, {"images": np.zeros((1, 3, 64, 64), np.float32)})) == 4


@pytest.mark.parametrize("size, batch, free, words", [
    ((640, 640), 1, 2**30, r"exporting at input 640x640 \(batch 1\) needs about 0.1 GiB of memory \(2x its 0.1 GiB of "
                           r"layer outputs\), 1.0 GiB is available here"),  # patched below: 10 MiB free
    ((640, 640), 1000, None, r"batch 1000 at input 640x640: the layer outputs would take 72.3 GiB, over the 64 "
                             r"GiB limit"),
    ((128, 128), 0, None, "batch 0 must be an integer >= 1"),
])
def test_export_refuses_what_cannot_fit_in_memory_before_tracing(size, batch, free, words, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("traced"))
    if free is not None:  # a machine with little memory left
        monkeypatch.setattr(onnx_export, "available_memory", lambda: 10 * 2**20)
        words = words.replace("1.0 GiB", "0.0 GiB")
    with pytest.raises(YoloV3TrtError, match=words):
        export_onnx(YoloV3.from_cfg("yolov3-tiny"), tmp_path / "m.onnx", COCO_NAMES, size=size, batch=batch)
