"""Detector: the same detections on every backend; lifecycle, timings and bad inputs."""
from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from helpers import DARKNET, random_model

from yolov3_trt import Detector, YoloV3TrtError
from yolov3_trt.errors import FileError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.model.checkpoint import save_checkpoint
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.preprocess import read_image

SIZE = (320, 256)
CONF = 0.3


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The same weights as raw ONNX, end2end ONNX, a checkpoint, and an in-memory model."""
    folder = tmp_path_factory.mktemp("models")
    model = random_model(folder, seed=9, name="tiny.weights")
    export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=SIZE)
    export_onnx(model, folder / "e2e.onnx", COCO_NAMES, flavour="end2end", size=SIZE, conf=CONF)
    save_checkpoint(folder / "tiny.pt", model, COCO_NAMES)
    return {"folder": folder, "model": model}


@pytest.fixture(scope="module")
def images():
    photos = [read_image(DARKNET / "images" / f"{n}.jpg") for n in ("dog", "giraffe", "person")]
    return photos + [np.ascontiguousarray(photos[0][:, :, 0])]  # a grey one too


def _same(a, b, atol=0.02):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    assert a.class_names == b.class_names
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=atol)


def test_every_backend_gives_the_same_detections(models, images):
    folder = models["folder"]
    detectors = [Detector(folder / "raw.onnx", "onnxruntime", conf=CONF), Detector(folder / "e2e.onnx"),
                 Detector(folder / "tiny.pt", conf=CONF),
                 Detector.from_model(models["model"], COCO_NAMES, size=SIZE, conf=CONF)]
    # the checkpoint runs at the cfg's own size: compare it at that size separately
    assert detectors[2].input_size == (416, 416)
    results = [d.detect_batch(images) for d in detectors]
    assert [d.backend for d in detectors] == ["onnxruntime (CPUExecutionProvider)"] * 2 + ["torch (cpu)"] * 2
    reference = results[3]
    for other in (results[0], results[1]):
        for a, b in zip(other, reference):
            _same(a, b)
    for d in detectors:
        d.close()


def test_detect_equals_detect_batch_and_is_deterministic(models, images):
    with Detector(models["folder"] / "raw.onnx", conf=CONF) as d:
        batch = d.detect_batch(images)
        for image, expected in zip(images, batch):
            got = d.detect(image)
            np.testing.assert_array_equal(got.boxes, expected.boxes)
            np.testing.assert_array_equal(got.scores, expected.scores)
        assert set(d.last_timings) == {"preprocess", "infer", "postprocess", "total"}
        assert all(v >= 0 for v in d.last_timings.values())


def test_boxes_are_in_image_pixels(models, images):
    with Detector(models["folder"] / "raw.onnx", conf=CONF) as d:
        for image, dets in zip(images, d.detect_batch(images)):
            h, w = image.shape[:2]
            assert (dets.boxes[:, [0, 2]] <= w).all() and (dets.boxes[:, [1, 3]] <= h).all()
            assert (dets.boxes >= 0).all()


def test_thresholds_apply(models, images):
    with Detector(models["folder"] / "raw.onnx", conf=CONF, max_det=3) as d:
        dets = d.detect(images[0])
        assert len(dets) == 3 and (dets.scores > CONF).all()
    with Detector(models["folder"] / "e2e.onnx", conf=0.6) as d:  # stricter than baked: filtered after
        assert (d.detect(images[0]).scores > 0.6).all()


def test_end2end_refuses_settings_it_cannot_honour(models):
    path = models["folder"] / "e2e.onnx"
    with pytest.raises(YoloV3TrtError, match="exported end2end with conf 0.3; conf 0.1 needs a re-export"):
        Detector(path, conf=0.1)
    with pytest.raises(YoloV3TrtError, match="iou 0.45; iou 0.6"):
        Detector(path, iou=0.6)


def test_detector_holds_the_decode_and_nms_specs(models):
    from dataclasses import replace

    from yolov3_trt.postprocess import DEFAULT_IOU, DEFAULT_PRE_NMS_TOP_K
    from yolov3_trt.specs import NmsSpec

    with Detector(models["folder"] / "raw.onnx", conf=CONF, max_det=3) as d:
        assert d.decode == models["model"].decode_spec(SIZE) and d.metadata.nms_spec() is None
        assert d.nms == NmsSpec(CONF, DEFAULT_IOU, 3, DEFAULT_PRE_NMS_TOP_K)
        assert (d.conf, d.iou, d.max_det, d.pre_nms_top_k) == (CONF, DEFAULT_IOU, 3, DEFAULT_PRE_NMS_TOP_K)
        for name in ("conf", "iou", "max_det", "pre_nms_top_k"):  # read-only views of d.nms
            with pytest.raises(AttributeError):
                setattr(d, name, 0.9)
    with Detector(models["folder"] / "e2e.onnx", conf=0.6) as d:  # the rest: the baked NMS
        assert d.nms == replace(d.metadata.nms_spec(), conf=0.6) and d.metadata.nms_spec().conf == CONF


def _with_props(source, target, **changes):
    """A copy of the ONNX file ``source`` with metadata ``yolov3_trt.<key>`` set (None: removed)."""
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        props.pop(f"yolov3_trt.{key}", None)
        if value is not None:
            props[f"yolov3_trt.{key}"] = value
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))
    return target


def test_broken_metadata_is_a_file_error_naming_the_file(models, tmp_path):
    strides = _with_props(models["folder"] / "raw.onnx", tmp_path / "strides.onnx", strides="[[30, 30], [16, 16]]")
    with pytest.raises(FileError, match=r"strides.onnx: broken yolov3_trt metadata \(head 0: stride \(30, 30\)"):
        Detector(strides)
    no_conf = _with_props(models["folder"] / "e2e.onnx", tmp_path / "no_conf.onnx", conf=None)
    with pytest.raises(FileError, match="no_conf.onnx: broken yolov3_trt metadata .*without its conf"):
        Detector(no_conf)
    negative = _with_props(models["folder"] / "e2e.onnx", tmp_path / "negative.onnx", conf="-0.5")
    with pytest.raises(FileError, match=r"negative.onnx: broken yolov3_trt metadata \(conf must be >= 0"):
        Detector(negative)


def test_shared_across_threads(models, images):
    with Detector(models["folder"] / "raw.onnx", conf=CONF) as d:
        expected = d.detect(images[1])
        results = []
        threads = [threading.Thread(target=lambda: results.append(d.detect(images[1]))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4
        for r in results:
            np.testing.assert_array_equal(r.boxes, expected.boxes)


def test_closed_detector_refuses(models, images):
    d = Detector(models["folder"] / "raw.onnx")
    d.close()
    with pytest.raises(YoloV3TrtError, match="closed"):
        d.detect(images[0])


def test_bad_model_files(tmp_path, models):
    with pytest.raises(FileError, match="missing.onnx: no such model file"):
        Detector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(FileError, match="junk.onnx: not a loadable ONNX model"):
        Detector(junk)
    plain = tmp_path / "plain.onnx"   # a valid ONNX without our metadata
    model = onnx.load(str(models["folder"] / "raw.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    with pytest.raises(FileError, match="plain.onnx: has no yolov3_trt metadata"):
        Detector(plain)
    with pytest.raises(YoloV3TrtError, match="unknown model type '.bin'"):
        (tmp_path / "m.bin").write_bytes(b"x")
        Detector(tmp_path / "m.bin")
    with pytest.raises(YoloV3TrtError, match="the torch backend cannot load .onnx files"):
        Detector(models["folder"] / "raw.onnx", backend="torch")


@pytest.mark.parametrize("image, words", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 2), np.uint8), r"must have shape .* got \(10, 10, 2\)"),
    (np.zeros((2, 10, 10, 3), np.uint8), r"got \(2, 10, 10, 3\)"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    ("dog.jpg", "array"),
])
def test_bad_images(models, image, words):
    with Detector(models["folder"] / "raw.onnx") as d:
        with pytest.raises(YoloV3TrtError, match=words):
            d.detect(image)


@pytest.mark.parametrize("blob, words", [
    (np.zeros((1, 3, 256, 320), np.float64), "must be float32"),
    (np.zeros((3, 256, 320), np.float32), "rank 3"),
    (np.zeros((1, 1, 256, 320), np.float32), r"must be \(B, 3, 256, 320\), got \(1, 1, 256, 320\)"),
    (np.zeros((1, 3, 320, 320), np.float32), "got \\(1, 3, 320, 320\\)"),
])
def test_backend_validates_input(models, blob, words):
    with Detector(models["folder"] / "raw.onnx") as d:
        with pytest.raises(YoloV3TrtError, match=words):
            d._backend.infer(blob)


def test_torch_is_not_imported_by_the_onnx_runtime_path(models, tmp_path):
    import subprocess
    import sys
    code = ("import sys, numpy as np\nfrom yolov3_trt import Detector\n"
            f"d = Detector(r'{models['folder'] / 'raw.onnx'}')\n"
            "d.detect(np.zeros((50, 60, 3), np.uint8))\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_backend_options_reach_the_backend_and_unknown_ones_are_refused(models, images):
    onnx_path = models["folder"] / "raw.onnx"
    with Detector(onnx_path, backend="onnxruntime") as plain, \
            Detector(onnx_path, backend="onnxruntime", backend_options={"optimization": "basic"}) as basic:
        levels = [d._backend.session.get_session_options().graph_optimization_level for d in (plain, basic)]
        assert levels[0] != levels[1] and levels[1].name == "ORT_ENABLE_BASIC"
        _same(plain.detect(images[0]), basic.detect(images[0]), atol=1e-3)
    with pytest.raises(YoloV3TrtError, match="not understood by the onnxruntime backend"):
        Detector(onnx_path, backend="onnxruntime", backend_options={"cuda_graph": True})


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, YoloV3TrtError) and isinstance(err.value, ValueError)
    return message


@pytest.mark.parametrize("kwargs, words", [
    ({"iou": -1}, "iou=-1 is not an IoU threshold in [0, 1]"),
    ({"iou": 5}, "iou=5 is not an IoU threshold in [0, 1]"),
    ({"conf": 1.5}, "conf=1.5 is not a score threshold in [0, 1]"),
    ({"conf": float("nan")}, "conf=nan"),
    ({"conf": "0.3"}, "conf='0.3'"),
    ({"max_det": 0}, "max_det=0: expected an integer >= 1"),
    ({"max_det": 2.5}, "max_det=2.5"),
    ({"max_det": True}, "max_det=True"),
    ({"threads": 0}, "threads=0"),
    ({"device": "gpu"}, "device 'gpu': expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ({"device": "cuda:1"}, "device 'cuda:1': the onnxruntime backend takes 'cuda'"),
    ({"backend_options": ["optimization"]}, "backend_options=['optimization']: expected a dict"),
    ({"resize_kernel": "cubic"}, "unknown resize_kernel 'cubic' (expected one of darknet, opencv)"),
    ({"resize_kernel": None}, "unknown resize_kernel None"),
])
def test_detector_refuses_settings_the_cli_refuses(models, kwargs, words):
    from yolov3_trt.runtime.backends import DeviceError
    from yolov3_trt.runtime.detector import DetectorArgumentError

    with pytest.raises((DetectorArgumentError, DeviceError)) as err:
        Detector(models["folder"] / "raw.onnx", **kwargs)
    assert words in _one_line(err)


@pytest.mark.parametrize("path, words", [
    (None, "model_path=None: expected the path of an .onnx file, a TensorRT engine or a checkpoint (for an in-memory "
           "YoloV3, use Detector.from_model(model, names))"),
    (3, "model_path=3: expected the path"),
])
def test_detector_without_a_path(path, words):
    from yolov3_trt.runtime.detector import DetectorArgumentError

    with pytest.raises(DetectorArgumentError) as err:
        Detector(path)
    assert _one_line(err) == words or words in _one_line(err)


def test_from_model_takes_an_int_size_as_square(models, images):
    with Detector.from_model(models["model"], COCO_NAMES, size=320, conf=CONF) as square, \
            Detector.from_model(models["model"], COCO_NAMES, size=(320, 320), conf=CONF) as pair:
        assert square.input_size == pair.input_size == (320, 320)
        _same(square.detect(images[0]), pair.detect(images[0]), atol=1e-4)


@pytest.mark.parametrize("kwargs, words", [
    ({"size": 100}, "size=100: width and height must be multiples of 32 from 32 to 8192"),
    ({"size": (320, 100)}, "size=(320, 100): width and height must be multiples of 32"),
    ({"size": 99999968}, "size=99999968: width and height must be multiples of 32 from 32 to 8192"),
    ({"size": "416"}, "size='416': expected N or (width, height), integers"),
    ({"size": (416,)}, "size=(416,): expected N or (width, height)"),
    ({"iou": 5}, "iou=5"),
    ({"max_det": 0}, "max_det=0"),
    ({"device": "tpu"}, "device 'tpu'"),
    ({"resize_kernel": "OpenCV"}, "unknown resize_kernel 'OpenCV' (expected one of darknet, opencv)"),
])
def test_from_model_refuses_bad_arguments(models, kwargs, words):
    from yolov3_trt.runtime.backends import DeviceError
    from yolov3_trt.runtime.detector import DetectorArgumentError

    with pytest.raises((DetectorArgumentError, DeviceError)) as err:
        Detector.from_model(models["model"], COCO_NAMES, **kwargs)
    assert words in _one_line(err)
    with pytest.raises(DetectorArgumentError, match="model=NoneType: expected a yolov3_trt YoloV3 module"):
        Detector.from_model(None, COCO_NAMES)
    with pytest.raises(DetectorArgumentError, match="names='person': expected a sequence"):
        Detector.from_model(models["model"], "person")


def _gpu_here() -> tuple[bool, bool]:
    import onnxruntime as ort
    import torch

    return torch.cuda.is_available(), "CUDAExecutionProvider" in ort.get_available_providers()


def test_cuda_without_a_gpu_is_refused_not_run_on_the_cpu(models):
    from yolov3_trt.runtime.backends import DeviceError

    torch_gpu, ort_gpu = _gpu_here()
    folder = models["folder"]
    cases = []
    if not ort_gpu:
        cases.append((lambda: Detector(folder / "raw.onnx", device="cuda"),
                      "device 'cuda': onnxruntime 1"))  # the version, then "has no CUDA provider"
    if not torch_gpu:
        cases += [(lambda: Detector(folder / "tiny.pt", device="cuda"), "device 'cuda': torch 2"),
                  (lambda: Detector.from_model(models["model"], COCO_NAMES, device="cuda:0"), "sees no CUDA GPU here")]
    if not cases:
        pytest.skip("a GPU is visible to both onnxruntime and torch here")
    for make, words in cases:
        with pytest.raises(DeviceError) as err:
            make()
        assert words in _one_line(err) and "use device='cpu' or 'auto'" in str(err.value)


def test_a_cuda_session_that_fell_back_to_the_cpu_is_refused():
    """onnxruntime-gpu lists its CUDA provider even where it cannot load it (no driver) and falls back."""
    from yolov3_trt.runtime.backends import DeviceError, check_loaded_device

    class FellBack:
        name, description = "onnxruntime", "onnxruntime (CPUExecutionProvider)"

    with pytest.raises(DeviceError, match="could not use the GPU and fell back to onnxruntime "
                                          r"\(CPUExecutionProvider\)"):
        check_loaded_device(FellBack(), "cuda")
    check_loaded_device(FellBack(), "auto")  # auto may run on the CPU
    check_loaded_device(FellBack(), "cpu")


def test_resize_kernel_is_an_attribute_in_the_log_and_used_for_every_call(models, images, caplog, monkeypatch):
    import yolov3_trt.runtime.detector as module

    path = models["folder"] / "raw.onnx"
    with caplog.at_level("INFO", logger="yolov3_trt.runtime.detector"):
        exact, fast = Detector(path, "onnxruntime", conf=CONF), Detector(path, "onnxruntime", conf=CONF,
                                                                          resize_kernel="opencv")
    logged = [r.getMessage() for r in caplog.records if r.name == "yolov3_trt.runtime.detector"]
    assert "(letterbox, darknet resize)" in logged[0] and "(letterbox, opencv resize)" in logged[1]
    with exact, fast:
        assert exact.resize_kernel == "darknet" and fast.resize_kernel == "opencv"
        with Detector.from_model(models["model"], COCO_NAMES, size=SIZE, resize_kernel="opencv") as torch_fast:
            assert torch_fast.resize_kernel == "opencv"
        seen = []
        preprocess = module.preprocess

        def spy(*args, **kwargs):
            seen.append(kwargs.get("kernel"))
            return preprocess(*args, **kwargs)

        monkeypatch.setattr(module, "preprocess", spy)
        fast.detect(images[0])
        fast.detect_batch(images[:2])
        exact.detect(images[0])
        assert seen == ["opencv", "opencv", "darknet"]
