"""yolov3_trt.data: the dataset model, YOLO and COCO loaders/writers, validation, summary, split, CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3_trt.cli.common import run
from yolov3_trt.data.__main__ import main
from yolov3_trt.data.coco_format import to_coco, write_coco
from yolov3_trt.data.dataset import DetectionDataset, Sample, load_dataset
from yolov3_trt.data.yolo_format import label_path, write_yolo
from yolov3_trt.errors import DatasetError, FileError, YoloV3TrtError


def image(path: Path, width: int = 40, height: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 127, np.uint8))
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def coco_json(tmp_path: Path, **changes) -> Path:
    """A valid COCO file with two 40x20 images in images/ (categories 7 and 3), then ``changes``."""
    image(tmp_path / "images" / "a.png")
    image(tmp_path / "images" / "b.png")
    data = {
        "images": [{"id": 10, "file_name": "a.png", "width": 40, "height": 20},
                   {"id": 11, "file_name": "b.png", "width": 40, "height": 20}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 10, "category_id": 7, "bbox": [4, 2, 8, 10], "iscrowd": 0},
                        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 40, 20]},
                        {"id": 3, "image_id": 11, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1}],
    }
    data.update(changes)
    return text(tmp_path / "train.json", json.dumps(data))


# --- YOLO folder, list file, COCO ---------------------------------------------------------------

def test_yolo_folder_mirrored_labels(tmp_path):
    for name in ("a.png", "b.png", "sub/c.jpg"):
        image(tmp_path / "images" / name)
    text(tmp_path / "labels" / "a.txt", "1 0.5 0.5 0.2 0.4\n\n0 0.25 0.75 0.5 0.5\n")
    text(tmp_path / "labels" / "sub" / "c.txt", "2 0.1 0.1 0.2 0.2\n")
    text(tmp_path / "classes.names", "a\nb\nc\n")
    ds = load_dataset(tmp_path)
    relative = [s.image.relative_to(tmp_path).as_posix() for s in ds]
    assert relative == ["images/a.png", "images/b.png", "images/sub/c.jpg"]
    assert ds.names == ["a", "b", "c"] and len(ds) == 3
    np.testing.assert_allclose(ds[0].boxes, [[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.5]])
    assert ds[0].boxes.dtype == np.float32 and ds[0].classes.dtype == np.int64
    assert ds[0].classes.tolist() == [1, 0]
    assert ds[1].boxes.shape == (0, 4) and ds[1].classes.shape == (0,)  # no label file: background
    assert ds[2].classes.tolist() == [2]
    assert ds[0].width is None and ds[0].height is None


def test_yolo_side_by_side_and_names_fallbacks(tmp_path, caplog):
    image(tmp_path / "x.jpg")
    text(tmp_path / "x.txt", "3 0.5 0.5 0.5 0.5\n")
    ds = load_dataset(tmp_path)
    assert ds.names == ["class0", "class1", "class2", "class3"] and "no names file" in caplog.text
    text(tmp_path / "classes.txt", "a\nb\nc\nd\n")
    assert load_dataset(tmp_path).names == ["a", "b", "c", "d"]
    text(tmp_path / "obj.names", "p\nq\nr\ns\n")  # a *.names file wins over classes.txt
    assert load_dataset(tmp_path).names == ["p", "q", "r", "s"]
    assert load_dataset(tmp_path, names=["1", "2", "3", "4"]).names == ["1", "2", "3", "4"]
    assert load_dataset(tmp_path, names=str(tmp_path / "classes.txt")).names == ["a", "b", "c", "d"]
    text(tmp_path / "other.names", "p\nq\nr\ns\n")
    with pytest.raises(FileError, match="several names files"):
        load_dataset(tmp_path)


def test_darknet_label_rule(tmp_path):
    mirrored = image(tmp_path / "data" / "images" / "train" / "a.png")
    text(tmp_path / "data" / "labels" / "train" / "a.txt", "")
    assert label_path(mirrored) == tmp_path / "data" / "labels" / "train" / "a.txt"
    voc = image(tmp_path / "VOC" / "JPEGImages" / "b.jpg")
    text(tmp_path / "VOC" / "labels" / "b.txt", "")
    assert label_path(voc) == tmp_path / "VOC" / "labels" / "b.txt"
    beside = image(tmp_path / "images" / "c.png")  # no labels/ counterpart: the .txt beside it
    assert label_path(beside) == tmp_path / "images" / "c.txt"


def test_list_file(tmp_path):
    root = tmp_path / "data"
    image(root / "images" / "a.png")
    text(root / "labels" / "a.txt", "0 0.5 0.5 0.1 0.1\n")
    image(root / "flat" / "b.png")
    text(root / "flat" / "b.txt", "1 0.5 0.5 0.1 0.1\n")
    absolute = image(tmp_path / "elsewhere" / "c.png")
    text(root / "classes.names", "x\ny\n")
    listing = text(root / "train.txt", f"# comment\nimages/a.png\n\n flat/b.png \n{absolute}\n")
    ds = load_dataset(listing)
    assert [s.image.name for s in ds] == ["a.png", "b.png", "c.png"]
    assert [s.classes.tolist() for s in ds] == [[0], [1], []]
    assert ds.names == ["x", "y"] and ds.source == str(listing)


def test_coco(tmp_path):
    ds = load_dataset(coco_json(tmp_path))
    assert ds.names == ["cat", "dog"]  # ascending category id: 3 -> class 0, 7 -> class 1
    assert [s.image for s in ds] == [tmp_path / "images" / "a.png", tmp_path / "images" / "b.png"]
    assert (ds[0].width, ds[0].height) == (40, 20)
    assert ds[0].classes.tolist() == [1, 0]
    np.testing.assert_allclose(ds[0].boxes, [[8 / 40, 7 / 20, 8 / 40, 10 / 20], [0.5, 0.5, 1.0, 1.0]], rtol=1e-6)
    assert len(ds[1].boxes) == 0  # its only annotation is a crowd
    np.testing.assert_allclose(ds[0].boxes_xyxy(), [[4, 2, 12, 12], [0, 0, 40, 20]], atol=1e-5)


def test_coco_names_and_image_beside_json(tmp_path):
    path = coco_json(tmp_path)
    assert load_dataset(path, names=["c", "d"]).names == ["c", "d"]
    text(tmp_path / "classes.names", "kitty\ndoggy\n")
    assert load_dataset(path).names == ["kitty", "doggy"]
    text(tmp_path / "classes.names", "kitty\n")
    with pytest.raises(DatasetError, match="2 categories but 1 names in .*classes.names"):
        load_dataset(path)
    (tmp_path / "classes.names").unlink()
    os.replace(tmp_path / "images" / "a.png", tmp_path / "a.png")  # file_name relative to the JSON's folder
    assert load_dataset(path)[0].image == tmp_path / "a.png"


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, problem", [
    ("0 0.5 0.5 0.2", "expected 5 fields 'class cx cy w h', got 4"),
    ("0 0.5 0.5 0.2 0.2 0.9", "expected 5 fields 'class cx cy w h', got 6"),
    ("0 0.5 abc 0.2 0.2", "cy is not a number: 'abc'"),
    ("0 0.5 0.5 nan 0.2", "w is not a finite number: 'nan'"),
    ("dog 0.5 0.5 0.2 0.2", "class id is not a number: 'dog'"),
    ("1.5 0.5 0.5 0.2 0.2", "class id '1.5' is not an integer"),
    ("-1 0.5 0.5 0.2 0.2", "class id -1 is negative"),
    ("3 0.5 0.5 0.2 0.2", "class id 3 out of range (3 names in"),
    ("0 1.2 0.5 0.1 0.1", "cx 1.2 outside [0, 1]"),
    ("0 0.5 0.5 0.1 -0.1", "h -0.1 outside [0, 1]"),
    ("0 0.5 0.5 0 0.2", "box width and height must be > 0"),
    ("0 0.95 0.5 0.2 0.2", "box extends outside the image: x from 0.85 to 1.05"),
    ("0 0.5 0.05 0.2 0.2", "box extends outside the image: y from -0.05 to 0.15"),
])
def test_label_errors_name_file_and_line(tmp_path, line, problem):
    image(tmp_path / "images" / "a.png")
    labels = text(tmp_path / "labels" / "a.txt", f"0 0.5 0.5 0.2 0.2\n\n{line}\n")
    text(tmp_path / "classes.names", "a\nb\nc\n")
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    assert str(err.value).startswith(f"{labels}:3: {problem}")
    assert "\n" not in str(err.value)


def test_tiny_slop_is_clipped(tmp_path):
    image(tmp_path / "a.png")
    text(tmp_path / "a.txt", "0 0.05 0.9999996 0.1000006 0.0000008\n")  # edges 6e-7 and 4e-7 past 0 and 1
    boxes = load_dataset(tmp_path)[0].boxes_xyxy(1, 1)
    assert boxes.min() >= 0 and boxes.max() <= 1
    np.testing.assert_allclose(boxes, [[0, 0.9999992, 0.1, 1]], atol=1e-6)


def test_list_file_errors(tmp_path):
    image(tmp_path / "a.png")
    listing = text(tmp_path / "list.txt", "a.png\n# fine\nmissing.png\n")
    with pytest.raises(DatasetError, match=r"list\.txt:3: image not found: 'missing.png'$"):
        load_dataset(listing)
    with pytest.raises(DatasetError, match="has no entries"):
        load_dataset(text(tmp_path / "empty.txt", "\n# nothing\n"))


def test_empty_and_unknown_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(FileError, match="no such file or folder"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(FileError, match="not a dataset"):
        load_dataset(text(tmp_path / "data.yaml", "x: 1\n"))


@pytest.mark.parametrize("changes, problem", [
    ({"images": None}, "'images' must be a list, got NoneType"),
    ({"annotations": {}}, "'annotations' must be a list"),
    ({"images": [{"id": 10, "file_name": "a.png", "height": 20}]}, "images[0] (id 10): missing key 'width'"),
    ({"images": [{"id": 10, "file_name": "a.png", "width": 0, "height": 20}]}, "width must be a positive integer"),
    ({"images": [{"id": 10, "file_name": "zz.png", "width": 40, "height": 20}]}, "image file not found: 'zz.png'"),
    ({"images": []}, "'images' is empty"),
    ({"categories": [{"id": 7}]}, "categories[0] (id 7): missing key 'name'"),
    ({"categories": [{"id": 7, "name": "a"}, {"id": 7, "name": "b"}]}, "duplicate category id 7"),
    ({"annotations": [{"id": 5, "image_id": 99, "category_id": 7, "bbox": [0, 0, 1, 1]}]},
     "annotations[0] (id 5): image_id 99 is not in 'images'"),
    ({"annotations": [{"id": 5, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]}]},
     "annotations[0] (id 5): category_id 1 is not in 'categories'"),
    ({"annotations": [{"image_id": 10, "category_id": 7}]}, "annotations[0]: missing key 'bbox'"),
    ({"annotations": [{"image_id": 10, "category_id": 7, "bbox": [0, 0, 1]}]}, "bbox must be 4 numbers"),
    ({"annotations": [{"image_id": 10, "category_id": 7, "bbox": [30, 5, 12, 5]}]}, "outside the 40x20 image"),
    ({"annotations": [{"image_id": 10, "category_id": 7, "bbox": [-2, 5, 12, 5]}]}, "outside the 40x20 image"),
])
def test_coco_errors(tmp_path, changes, problem):
    path = coco_json(tmp_path, **changes)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_coco_bad_json_names_line_and_small_overhang(tmp_path, caplog):
    bad = text(tmp_path / "bad.json", '{\n  "images": [\n  oops]\n}\n')
    with pytest.raises(DatasetError, match=r"bad\.json:3: not valid JSON"):
        load_dataset(bad)
    path = coco_json(tmp_path, annotations=[{"image_id": 10, "category_id": 7, "bbox": [30.5, 0, 10, 20.5]},
                                            {"image_id": 10, "category_id": 7, "bbox": [3, 3, 0, 4]}])
    ds = load_dataset(path)
    np.testing.assert_allclose(ds[0].boxes_xyxy(), [[30.5, 0, 40, 20]])  # clipped; the zero-size box skipped
    assert "skipped 1 zero-size boxes" in caplog.text


# --- writers and round trips ----------------------------------------------------------------------

def test_coco_to_yolo_to_coco_round_trip(tmp_path):
    source = load_dataset(coco_json(tmp_path / "src"))
    write_yolo(source, tmp_path / "yolo")
    assert (tmp_path / "yolo" / "labels" / "b.txt").read_text() == ""  # background gets an empty file
    yolo = load_dataset(tmp_path / "yolo")
    assert yolo.names == source.names
    assert os.path.samefile(yolo[0].image, source[0].image)  # hard-linked
    for a, b in zip(source, yolo):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-6)
        assert a.classes.tolist() == b.classes.tolist()
    write_coco(yolo, tmp_path / "yolo" / "again.json")  # sizes read from the images
    again = load_dataset(tmp_path / "yolo" / "again.json")
    assert json.loads((tmp_path / "yolo" / "again.json").read_text())["images"][0]["file_name"] == "a.png"
    for a, b in zip(source, again):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        assert (b.width, b.height) == (40, 20) and a.classes.tolist() == b.classes.tolist()


def test_yolo_to_coco_elsewhere_and_copies(tmp_path):
    for stem, ext in (("a", "png"), ("a", "jpg")):  # same stem: written names get an index prefix
        image(tmp_path / "src" / "images" / f"{stem}.{ext}", 30, 10)
    text(tmp_path / "src" / "labels" / "a.txt", "1 0.5 0.5 0.5 0.4\n")
    source = load_dataset(tmp_path / "src", names=["p", "q"])
    write_yolo(source, tmp_path / "out", link=False)
    names = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert names == ["000000_a.jpg", "000001_a.png"]
    assert not os.path.samefile(tmp_path / "out" / "images" / "000000_a.jpg", source[0].image)
    path = write_coco(source, tmp_path / "elsewhere" / "data.json")  # images outside: absolute file names
    coco = json.loads(path.read_text())
    assert Path(coco["images"][0]["file_name"]).is_absolute()
    assert coco["categories"] == [{"id": 1, "name": "p", "supercategory": "object"},
                                  {"id": 2, "name": "q", "supercategory": "object"}]
    assert coco["annotations"][0]["category_id"] == 2 and coco["annotations"][0]["bbox"] == [7.5, 3.0, 15.0, 4.0]
    back = load_dataset(path)
    assert [s.image for s in back] == [s.image.resolve() for s in source]


def test_to_coco_ids():
    ds = DetectionDataset([Sample("x.png", [[0.5, 0.5, 0.5, 0.5]], [2], 10, 10), Sample("y.png", [], [], 4, 4)],
                          ["a", "b", "c"], "mem")
    coco = to_coco(ds)
    assert [im["id"] for im in coco["images"]] == [1, 2]
    assert coco["annotations"] == [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [2.5, 2.5, 5.0, 5.0],
                                    "area": 25.0, "iscrowd": 0}]


# --- model, summary, split ------------------------------------------------------------------------

def test_sample_normalises_and_freezes():
    s = Sample("a.png", [], [])
    assert s.boxes.shape == (0, 4) and s.classes.shape == (0,) and isinstance(s.image, Path)
    source = np.array([[0.5, 0.5, 0.1, 0.1]])
    s = Sample("a.png", source, [1])
    source[0, 0] = 0.0  # the sample holds a copy
    assert s.boxes[0, 0] == 0.5
    with pytest.raises(ValueError, match="read-only"):
        s.boxes[0, 0] = 1.0
    with pytest.raises(ValueError, match="got 1 boxes but 2 classes"):
        Sample("a.png", [[0.5, 0.5, 0.1, 0.1]], [1, 2])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        Sample("a.png", [[0.5, 0.5, 0.1]], [1])


def hand_made() -> DetectionDataset:
    return DetectionDataset([
        Sample("a.png", [[0.5, 0.5, 0.1, 0.2], [0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.4, 0.4]], [0, 0, 2], 100, 100),
        Sample("b.png", [], [], 100, 100),
        Sample("c.png", [[0.5, 0.5, 0.2, 0.1]], [2]),
        Sample("d.png", [[0.5, 0.5, 1.0, 1.0]], [0], 50, 40),
    ], ["cat", "dog", "bird"], "hand")


def test_summary_numbers():
    summary = hand_made().summary()
    assert summary["images"] == 4 and summary["boxes"] == 5 and summary["classes"] == 3
    assert summary["images_without_boxes"] == 1
    assert summary["per_class"] == [{"id": 0, "name": "cat", "boxes": 3, "images": 2},
                                    {"id": 1, "name": "dog", "boxes": 0, "images": 0},
                                    {"id": 2, "name": "bird", "boxes": 2, "images": 2}]
    assert summary["box_width"] == pytest.approx({"min": 0.1, "median": 0.4, "max": 1.0})
    assert summary["box_height"] == pytest.approx({"min": 0.1, "median": 0.4, "max": 1.0})
    # pixel areas: 10x20=200 small, 50x50=2500 medium, 40x40=1600 medium, 50x40=2000 medium; c.png unknown
    assert summary["coco_area"] == {"small": 1, "medium": 3, "large": 0, "unknown": 1}
    json.dumps(summary)
    empty = DetectionDataset([Sample("a.png", [], [])], ["x"], "e").summary()
    assert empty["box_width"] is None and empty["coco_area"] is None


def test_split_is_deterministic_and_partitions():
    ds = DetectionDataset([Sample(f"{i}.png", [], []) for i in range(50)], ["x"], "s")
    train, val = ds.split(0.8, seed=3)
    assert len(train) == 40 and len(val) == 10
    assert sorted(s.image.name for s in train.samples + val.samples) == sorted(s.image.name for s in ds)
    again_train, again_val = ds.split(0.8, seed=3)
    assert [s.image for s in again_val] == [s.image for s in val]
    assert [s.image for s in ds.split(0.8, seed=4)[1]] != [s.image for s in val]
    order = [s.image.name for s in ds]
    assert [s.image.name for s in val] == sorted((s.image.name for s in val), key=order.index)  # source order kept
    assert len(ds.split(0.001, 0)[0]) == 1 and len(ds.split(0.999, 0)[1]) == 1  # neither part empty
    assert len(ds.split(0.0, 0)[0]) == 0 and len(ds.split(1.0, 0)[1]) == 0
    with pytest.raises(ValueError):
        ds.split(1.5, 0)


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_summary(tmp_path, capsys):
    path = coco_json(tmp_path)
    out = tmp_path / "out" / "summary.json"
    assert run(main, ["summary", str(path), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 images, 2 boxes, 2 classes, 1 images without boxes" in printed
    assert "COCO sizes: small 2  medium 0  large 0" in printed
    assert json.loads(out.read_text())["per_class"][1] == {"id": 1, "name": "dog", "boxes": 1, "images": 1}
    assert run(main, ["summary", str(path), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["boxes"] == 2


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: text(p / "bad" / "x.txt", "0 2 0.5 0.1 0.1\n").parent, "x.txt:1: cx 2 outside [0, 1]"),
    (lambda p: text(p / "names.names", "\n"), "not a dataset"),
])
def test_cli_summary_errors_exit_2(tmp_path, capsys, make, words):
    if "x.txt" in words:
        image(tmp_path / "bad" / "x.png")
    assert run(main, ["summary", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and words in err


def test_errors_are_yolov3trt_errors():
    assert issubclass(DatasetError, FileError) and issubclass(DatasetError, YoloV3TrtError)
    assert str(DatasetError("a.txt", "bad", 4)) == "a.txt:4: bad"
    assert str(DatasetError("a.json", "bad")) == "a.json: bad"
