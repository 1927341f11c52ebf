"""python -m yolov3_trt.detect end to end, and every bad input it must refuse cleanly."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import DARKNET, ROOT

from yolov3_trt.cli.common import run
from yolov3_trt.darknet.builtin import load_cfg
from yolov3_trt.darknet.layers import build_network
from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.detect import main
from yolov3_trt.model.checkpoint import save_checkpoint
from yolov3_trt.model.yolov3 import YoloV3

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
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_folder_writes_images_and_coco_json(tiny_weights, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(main, [str(photos), "--weights", str(tiny_weights), "--output", str(out), *FAST]) == 0
    assert _files(out) == ["detections.json", "dog.jpg", "person.jpg"]
    records = json.loads((out / "detections.json").read_text())
    assert records, "random weights at conf 0.3 still give detections"
    dog = cv2.imread(str(DARKNET / "images" / "dog.jpg"))
    for r in records:
        assert set(r) >= {"image_id", "file_name", "category_id", "category_name", "bbox", "score"}
        x, y, w, h = r["bbox"]
        assert 0 <= x <= x + w <= dog.shape[1] + 0.01 if r["file_name"] == "dog" else True
        assert r["score"] > 0.3
    assert "dog: " in capsys.readouterr().out


def test_detect_is_deterministic(tiny_weights, photos, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run(main, [str(photos / "dog.jpg"), "--weights", str(tiny_weights), "--output", str(out),
                          "--no-draw", *FAST]) == 0
    assert (outs[0] / "detections.json").read_bytes() == (outs[1] / "detections.json").read_bytes()
    assert _files(outs[0]) == ["detections.json"]


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
    frames = {r["image_id"] for r in json.loads((out / "detections.json").read_text())}
    assert frames <= set(range(6))


def test_checkpoint_with_names(tmp_path, photos):
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=2)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, ["robot", "cone"])
    out = tmp_path / "out"
    assert run(main, [str(photos / "dog.jpg"), "--checkpoint", str(ckpt), "--output", str(out),
                      "--size", "128", "--conf", "0.01", "--no-draw"]) == 0
    names = {r["category_name"] for r in json.loads((out / "detections.json").read_text())}
    assert names <= {"robot", "cone"} and names


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
    # the two good images were finished before the bad one; no JSON, no temp files
    assert _files(out) == ["dog.jpg", "person.jpg"]
