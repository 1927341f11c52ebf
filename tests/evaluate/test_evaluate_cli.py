"""``python -m yolov3_trt.evaluate`` end to end on a tiny YOLO-format set and a random-weights model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import DARKNET, random_model

from yolov3_trt.cli.common import run
from yolov3_trt.evaluate import coco_metrics
from yolov3_trt.evaluate.__main__ import main
from yolov3_trt.preprocess import read_image
from yolov3_trt.runtime.detector import Detector

pytest.importorskip("pycocotools")
pytestmark = pytest.mark.skipif(not (DARKNET / "images").is_dir(),
                                reason=f"Darknet sample images not found at {DARKNET}")

NAMES = ["dog", "bicycle"]
SIZE = (128, 128)
# dog.jpg (768x576): the dog and the bicycle, normalised cx cy w h
DOG_LABELS = "0 0.300 0.650 0.250 0.520\n1 0.480 0.480 0.600 0.450\n"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A 2-class yolov3-tiny with random weights, as Darknet weights and as raw ONNX."""
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("model")
    model = random_model(folder, seed=3, num_classes=len(NAMES), name="tiny2.weights")
    export_onnx(model, folder / "tiny2.onnx", NAMES, size=SIZE)
    return {"onnx": folder / "tiny2.onnx", "weights": folder / "tiny2.weights"}


def _make_dataset(root, names=NAMES, bad_image=False):
    """images/ + labels/ + classes.names: two labelled photos and one without labels."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    shutil.copy(DARKNET / "images" / "dog.jpg", root / "images" / "dog.jpg")
    (root / "labels" / "dog.txt").write_text(DOG_LABELS)
    shutil.copy(DARKNET / "images" / "dog.jpg", root / "images" / "dog2.jpg")
    (root / "labels" / "dog2.txt").write_text(DOG_LABELS.splitlines()[0] + "\n")
    shutil.copy(DARKNET / "images" / "eagle.jpg", root / "images" / "eagle.jpg")  # no label file: no objects
    if bad_image:
        (root / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "classes.names").write_text("\n".join(names) + "\n")
    return root


def test_end_to_end_writes_metrics_json_and_plot(model_files, tmp_path, capsys):
    data = _make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    argv = [str(data), "--model", str(model_files["onnx"]), "--output", str(out), "--infer-batch", "2"]
    assert run(main, argv) == 0
    stdout = capsys.readouterr().out
    assert "global AP50" in stdout and "per-image AP50" in stdout and "mAP@[.50:.95]" in stdout
    report = json.loads((out / "metrics.json").read_text())
    metrics = report["metrics"]
    for key in ("map", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar100", "global_ap50", "global_ap",
                "per_image_ap50", "per_image_ap"):
        assert key in metrics and (metrics[key] is None or 0.0 <= metrics[key] <= 1.0)
    assert (metrics["per_image_images"], metrics["per_image_excluded"]) == (2, 1)  # eagle.jpg has no labels
    assert report["dataset"]["images"] == 3 and report["dataset"]["boxes"] == 3
    assert report["dataset"]["names"] == NAMES
    assert report["model"]["num_classes"] == 2 and report["model"]["conf"] == 0.005
    assert report["model"]["input_size"] == list(SIZE) and report["model"]["max_det"] == 100
    assert [c["boxes"] for c in report["per_class"]] == [2, 1]
    assert report["command"].startswith("python -m yolov3_trt.evaluate ") and str(data) in report["command"]
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"

    # the CLI's COCO numbers are those of the Detector's detections with the labels in pixels
    images = [read_image(data / "images" / n) for n in ("dog.jpg", "dog2.jpg", "eagle.jpg")]
    with Detector(model_files["onnx"], conf=0.005, max_det=100) as detector:
        found = detector.detect_batch(images)
    h, w = images[0].shape[:2]
    rows = np.array([[float(v) for v in line.split()] for line in DOG_LABELS.splitlines()])
    xyxy = np.concatenate([rows[:, 1:3] - rows[:, 3:] / 2, rows[:, 1:3] + rows[:, 3:] / 2], 1) * [w, h, w, h]
    gt = [(xyxy, rows[:, 0].astype(int)), (xyxy[:1], rows[:1, 0].astype(int)), (np.zeros((0, 4)), np.zeros(0, int))]
    expected = coco_metrics(gt, [(d.boxes, d.scores, d.class_ids) for d in found],
                            [im.shape[1::-1] for im in images], 2)
    assert metrics["map"] == pytest.approx(expected["map"], abs=1e-6)
    assert metrics["ap50"] == pytest.approx(expected["ap50"], abs=1e-6)


def test_torch_model_flags_json_path_and_limit(model_files, tmp_path):
    data = _make_dataset(tmp_path / "data")
    json_path = tmp_path / "elsewhere" / "m.json"
    argv = ["--data", str(data), "--cfg", "yolov3-tiny", "--classes", "2", "--weights", str(model_files["weights"]),
            "--size", "128", "--output", str(tmp_path / "out"), "--json", str(json_path), "--limit", "1",
            "--conf", "0.01"]
    assert run(main, argv) == 0
    report = json.loads(json_path.read_text())
    # the fast path: exported once to a cached ONNX, run on ONNX Runtime
    assert report["dataset"]["images"] == 1 and report["model"]["backend"].startswith("onnxruntime")
    assert report["model"]["conf"] == 0.01
    assert (tmp_path / "out" / "pr_curve.png").is_file()
    assert run(main, [*argv, "--backend", "torch"]) == 2  # the first run's files are there
    assert run(main, [*argv, "--backend", "torch", "--force"]) == 0
    torch_report = json.loads(json_path.read_text())
    assert torch_report["model"]["backend"].startswith("torch")
    assert torch_report["metrics"] == pytest.approx(report["metrics"], abs=1e-6)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_class_count_mismatch_is_one_line(model_files, tmp_path, capsys):
    data = _make_dataset(tmp_path / "data", names=["dog", "bicycle", "car"])
    assert run(main, [str(data), "--model", str(model_files["onnx"]), "--output", str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert "the dataset has 3 classes but the model" in err and "has 2" in err
    assert not (tmp_path / "out").exists()


def test_unreadable_image_names_the_file(model_files, tmp_path, capsys):
    data = _make_dataset(tmp_path / "data", bad_image=True)
    assert run(main, [str(data), "--model", str(model_files["onnx"]), "--output", str(tmp_path / "out")]) == 2
    assert "broken.jpg" in _one_line_error(capsys)


def test_usage_errors(model_files, tmp_path, capsys):
    assert run(main, ["--model", str(model_files["onnx"])]) == 2
    assert "no dataset" in _one_line_error(capsys)
    data = _make_dataset(tmp_path / "data")
    assert run(main, [str(data), "--model", str(model_files["onnx"]), "--size", "256"]) == 2
    assert "--size" in _one_line_error(capsys)
    assert run(main, [str(tmp_path / "missing"), "--model", str(model_files["onnx"])]) == 2
    assert "missing" in _one_line_error(capsys)


def test_resize_kernel_flag_reaches_the_detector(model_files, tmp_path, capsys):
    data = _make_dataset(tmp_path / "data")
    argv = [str(data), "--model", str(model_files["onnx"]), "--output", str(tmp_path / "out")]
    assert run(main, [*argv, "--resize-kernel", "opencv"]) == 0
    assert "opencv resize" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["model"]["resize_kernel"] == "opencv"
    with pytest.raises(SystemExit) as info:
        run(main, [*argv, "--resize-kernel", "cubic"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "argument --resize-kernel: invalid choice: 'cubic'" in err
