"""python -m yolov3_trt.detect end to end, and every bad input it must refuse cleanly."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import DARKNET, ROOT

from yolov3_trt.cli.common import run
from yolov3_trt.cli.outputs import MANIFEST
from yolov3_trt.darknet.builtin import load_cfg
from yolov3_trt.darknet.layers import build_network
from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.detect import main
from yolov3_trt.model.checkpoint import save_checkpoint
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.names import COCO_CATEGORY_IDS, COCO_NAMES

FAST = ["--cfg", "yolov3-tiny", "--size", "128", "--conf", "0.3"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.weights"
    network = build_network(load_cfg("yolov3-tiny"))
    write_darknet_weights(path, network, random_darknet_weights(network, seed=11))
    return path


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("dog.jpg", "person.jpg"):
        (folder / name).write_bytes((DARKNET / "images" / name).read_bytes())
    return folder


def _files(folder):
    """Every file under ``folder`` (hidden temporary ones included) but the run's manifest."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def test_folder_writes_images_and_coco_json(tiny_weights, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(main, [str(photos), "--weights", str(tiny_weights), "--output", str(out), *FAST]) == 0
    assert _files(out) == ["detections.json", "dog.jpg", "person.jpg"]
    records = json.loads((out / "detections.json").read_text())
    assert records, "random weights at conf 0.3 still give detections"
    dog = cv2.imread(str(DARKNET / "images" / "dog.jpg"))
    for r in records:
        assert list(r) == ["image_id", "file_name", "category_id", "category_name", "class_index", "bbox", "score"]
        # File names keep their extension; ids are positions in the sorted folder listing.
        assert (r["image_id"], r["file_name"]) in {(0, "dog.jpg"), (1, "person.jpg")}
        # 80 classes with COCO's names: COCO's official category ids, the 0-based index beside them.
        assert r["category_name"] == COCO_NAMES[r["class_index"]]
        assert r["category_id"] == COCO_CATEGORY_IDS[r["class_index"]]
        x, y, w, h = r["bbox"]
        assert 0 <= x <= x + w <= dog.shape[1] + 0.01 if r["file_name"] == "dog.jpg" else True
        assert r["score"] > 0.3
    assert "dog: " in capsys.readouterr().out


def test_detect_is_deterministic(tiny_weights, photos, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run(main, [str(photos / "dog.jpg"), "--weights", str(tiny_weights), "--output", str(out),
                          "--no-draw", *FAST]) == 0
    assert (outs[0] / "detections.json").read_bytes() == (outs[1] / "detections.json").read_bytes()
    assert _files(outs[0]) == ["detections.json"]


def test_folder_json_identical_across_runs_and_copies(tiny_weights, photos, tmp_path):
    """Same folder twice, and a copy elsewhere whose files were created in the other order (so the
    file system may list them differently): byte-identical JSON, image ids included."""
    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir(parents=True)
    for name in sorted(_files(photos), reverse=True):
        (copy / name).write_bytes((photos / name).read_bytes())
    jsons = []
    for i, folder in enumerate([photos, photos, copy]):
        out = tmp_path / f"run{i}"
        assert run(main, [str(folder), "--weights", str(tiny_weights), "--output", str(out), "--no-draw", *FAST]) == 0
        jsons.append((out / "detections.json").read_bytes())
    assert jsons[0] == jsons[1] == jsons[2]
    assert {(r["image_id"], r["file_name"]) for r in json.loads(jsons[0])} == {(0, "dog.jpg"), (1, "person.jpg")}


def test_integer_file_names_are_image_ids(tiny_weights, photos, tmp_path):
    coco = tmp_path / "val2017"
    coco.mkdir()
    (coco / "000000397133.jpg").write_bytes((photos / "dog.jpg").read_bytes())
    (coco / "000000000139.jpg").write_bytes((photos / "person.jpg").read_bytes())
    out = tmp_path / "out"
    assert run(main, [str(coco), "--weights", str(tiny_weights), "--output", str(out), "--no-draw",
                      "--cfg", "yolov3-tiny", "--size", "128", "--conf", "0.1"]) == 0
    pairs = {(r["image_id"], r["file_name"]) for r in json.loads((out / "detections.json").read_text())}
    assert pairs == {(397133, "000000397133.jpg"), (139, "000000000139.jpg")}


def test_video_in_annotated_video_out(tiny_weights, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 96))
    photo = cv2.resize(cv2.imread(str(DARKNET / "images" / "horses.jpg")), (160, 96))
    for i in range(6):
        writer.write(np.roll(photo, 5 * i, axis=1))
    writer.release()
    out = tmp_path / "out"
    assert run(main, [str(video), "--weights", str(tiny_weights), "--output", str(out), *FAST]) == 0
    assert _files(out) == ["clip.mp4", "detections.json"]
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    capture.release()
    records = json.loads((out / "detections.json").read_text())
    assert {r["image_id"] for r in records} <= set(range(6))  # the frame index
    assert {r["file_name"] for r in records} == {"clip.mp4"}


def test_checkpoint_with_names(tmp_path, photos):
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=2)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, ["robot", "cone"])
    out = tmp_path / "out"
    assert run(main, [str(photos / "dog.jpg"), "--checkpoint", str(ckpt), "--output", str(out),
                      "--size", "128", "--conf", "0.01", "--no-draw"]) == 0
    records = json.loads((out / "detections.json").read_text())
    names = {r["category_name"] for r in records}
    assert names <= {"robot", "cone"} and names
    # Not COCO's classes: category_id stays the 0-based index.
    assert all(r["category_id"] == r["class_index"] == ["robot", "cone"].index(r["category_name"]) for r in records)


def test_subprocess_entry_point(tiny_weights, photos, tmp_path):
    done = subprocess.run([sys.executable, "-m", "yolov3_trt.detect", str(photos / "dog.jpg"), "--weights",
                           str(tiny_weights), "--output", str(tmp_path / "o"), *FAST],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "1 images" in done.stdout


def _bad_input(case, tmp_path, tiny_weights, photos):
    """(argv, words the one-line error must contain) for each bad-input case."""
    model = ["--cfg", "yolov3-tiny", "--weights", str(tiny_weights)]
    dog = str(photos / "dog.jpg")
    if case == "malformed_cfg":
        cfg = tmp_path / "bad.cfg"
        cfg.write_text((DARKNET / "cfg" / "yolov3-tiny.cfg").read_text().replace("filters=255", "filters=250", 1))
        return [dog, "--cfg", str(cfg), "--weights", str(tiny_weights)], "bad.cfg:"
    if case in ("truncated", "oversized"):
        path = tmp_path / f"{case}.weights"
        data = tiny_weights.read_bytes()
        path.write_bytes(data[:-100] if case == "truncated" else data + bytes(8))
        return [dog, "--cfg", "yolov3-tiny", "--weights", str(path)], f"{case}.weights: {case}"
    if case == "wrong_classes":
        return [dog, *model, "--classes", "3"], "tiny.weights: oversized"
    if case == "missing_weights":
        return [dog, "--cfg", "yolov3-tiny", "--weights", str(tmp_path / "nope.weights")], \
            "nope.weights: no such weights file"
    if case == "unreadable_image":
        path = tmp_path / "broken.jpg"
        path.write_bytes(b"this is not a jpeg")
        return [str(path), *model], "broken.jpg"
    if case == "missing_source":
        return [str(tmp_path / "nothing.jpg"), *model], "nothing.jpg"
    if case == "empty_folder":
        (tmp_path / "empty").mkdir()
        return [str(tmp_path / "empty"), *model], "empty"
    if case == "names_count":
        names = tmp_path / "two.names"
        names.write_text("a\nb\n")
        return [dog, *model, "--names", str(names)], "two.names"
    if case == "bad_checkpoint":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"junk")
        return [dog, "--checkpoint", str(bad)], "bad.pt: not a loadable PyTorch checkpoint"
    if case == "checkpoint_and_cfg":
        return [dog, *model, "--checkpoint", str(tmp_path / "x.pt")], "--checkpoint carries its own cfg"
    assert case == "no_weights"
    return [dog, "--cfg", "yolov3-tiny"], "no weights"


@pytest.mark.parametrize("case", ["malformed_cfg", "truncated", "oversized", "wrong_classes", "missing_weights",
                                  "unreadable_image", "missing_source", "empty_folder", "names_count",
                                  "bad_checkpoint", "no_weights", "checkpoint_and_cfg"])
def test_bad_input_exit_2_one_line_no_output(case, tiny_weights, photos, tmp_path, capsys):
    argv, expect = _bad_input(case, tmp_path, tiny_weights, photos)
    out = tmp_path / "out"
    assert run(main, [*argv, "--size", "128", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0], lines[0]
    assert not out.exists() or _files(out) == []


def test_bad_size_is_a_usage_error(tiny_weights, photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run(main, [str(photos / "dog.jpg"), "--weights", str(tiny_weights), "--size", "100",
                   "--output", str(tmp_path / "out")])
    assert info.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unreadable_image_mid_folder_stops_without_partial_files(tiny_weights, photos, tmp_path, capsys):
    (photos / "zzz_broken.jpg").write_bytes(b"\x00" * 64)
    out = tmp_path / "out"
    assert run(main, [str(photos), "--weights", str(tiny_weights), "--output", str(out), *FAST]) == 2
    assert "zzz_broken.jpg" in capsys.readouterr().err
    # the two good images were annotated before the bad one, in the staging folder: it is gone,
    # and so is the output folder it would have become
    assert not out.exists()


REAL_WEIGHTS = DARKNET / "weights" / "yolov3-tiny.weights"
REFERENCE = DARKNET / "reference" / "yolov3-tiny-416" / "detections.json"


@pytest.mark.skipif(not (REAL_WEIGHTS.is_file() and REFERENCE.is_file()), reason="official Darknet files not found")
def test_real_weights_json_scores_against_darknet_with_pycocotools(tmp_path):
    """Darknet's trained yolov3-tiny on its six photos: COCO's category ids (dog 18, bicycle 2,
    car 3, truck 8), and pycocotools, given C Darknet's own detections as ground truth, finds them
    all again: the JSON is what COCO tooling takes, ids and boxes included."""
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    out = tmp_path / "out"
    assert run(main, [str(DARKNET / "images"), "--cfg", "yolov3-tiny", "--weights", str(REAL_WEIGHTS),
                      "--conf", "0.25", "--output", str(out), "--no-draw"]) == 0
    records = json.loads((out / "detections.json").read_text())
    dog = {(r["category_name"], r["category_id"]) for r in records if r["file_name"] == "dog.jpg"}
    assert {("dog", 18), ("bicycle", 2), ("car", 3), ("truck", 8)} <= dog
    reference = json.loads(REFERENCE.read_text())["images"]
    file_names = sorted(reference)
    assert {r["file_name"]: r["image_id"] for r in records} == {n: i for i, n in enumerate(file_names)}
    images, annotations = [], []
    for image_id, name in enumerate(file_names):
        h, w = cv2.imread(str(DARKNET / "images" / name)).shape[:2]
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for d in reference[name]:
            x1, y1, x2, y2 = d["box_xyxy"]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                "category_id": COCO_CATEGORY_IDS[d["class_id"]], "area": (x2 - x1) * (y2 - y1),
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
    truth = coco.COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": i, "name": n} for i, n in zip(COCO_CATEGORY_IDS, COCO_NAMES)]}
    truth.createIndex()
    evaluation = cocoeval.COCOeval(truth, truth.loadRes(records), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[1] > 0.95  # AP at IoU 0.5; 0-based or shifted ids would score ~0


def test_resize_kernel_flag(tiny_weights, photos, tmp_path, capsys, caplog):
    dog = str(photos / "dog.jpg")
    with caplog.at_level("INFO", logger="yolov3_trt.runtime.detector"):
        assert run(main, [dog, "--weights", str(tiny_weights), "--output", str(tmp_path / "out"),
                          "--resize-kernel", "opencv", *FAST]) == 0
    assert any("opencv resize" in r.getMessage() for r in caplog.records if r.name == "yolov3_trt.runtime.detector")
    assert json.loads((tmp_path / "out" / "detections.json").read_text()) is not None
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(main, [dog, "--weights", str(tiny_weights), "--output", str(tmp_path / "bad"), "--resize-kernel",
                   "cubic", *FAST])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "argument --resize-kernel: invalid choice: 'cubic'" in err
    assert "darknet" in err and "opencv" in err  # the choices, quoted or not as this Python's argparse writes them
    assert not (tmp_path / "bad").exists()
