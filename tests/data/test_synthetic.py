"""yolov3_trt.data.synthetic and .shapes: determinism, classes, tight boxes, occlusion, files, CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from yolov3_trt.cli.common import run
from yolov3_trt.data.__main__ import main
from yolov3_trt.data.dataset import load_dataset
from yolov3_trt.data.shapes import (
    MIN_OBJECT_SIZE,
    MIN_VISIBLE_FRACTION,
    SHAPE_NAMES,
    ShapeMask,
    compose,
    resolve_occlusion,
    tight_box,
)
from yolov3_trt.data.synthetic import generate, render_image
from yolov3_trt.errors import FileError
from yolov3_trt.preprocess import read_image

SIZE = 128  # small images keep the tests fast; the geometry code does not depend on the size


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fifty(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("synthetic") / "set"
    return folder, generate(folder, 50, size=SIZE, seed=7, val_fraction=0.2)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    generate(tmp_path / "a", 4, size=(96, 64), seed=1, val_fraction=0.25)
    generate(tmp_path / "b", 4, size=(96, 64), seed=1, val_fraction=0.25)
    generate(tmp_path / "c", 4, size=(96, 64), seed=2, val_fraction=0.25)
    first, second, other = (files(tmp_path / name) for name in "abc")
    assert first == second
    assert sorted(first) == sorted(other)
    assert all(first[name] != other[name] for name in first if name.startswith("images/"))


def test_layout_and_returned_dataset(fifty):
    folder, ds = fifty
    assert (folder / "classes.names").read_text().split() == list(SHAPE_NAMES)
    assert len(list((folder / "images").glob("*.png"))) == 50 == len(list((folder / "labels").glob("*.txt")))
    assert ds.names == list(SHAPE_NAMES) and len(ds) == 50
    assert all((s.width, s.height) == (SIZE, SIZE) for s in ds)
    yolo = load_dataset(folder)  # the YOLO files say the same as the COCO file
    for a, b in zip(ds, yolo):
        assert a.image == b.image and a.classes.tolist() == b.classes.tolist()
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-6)


def test_at_least_five_classes_in_fifty_images(fifty):
    summary = fifty[1].summary()
    assert sum(c["boxes"] > 0 for c in summary["per_class"]) >= 5
    assert summary["boxes"] > 100
    assert summary["box_width"]["min"] >= (MIN_OBJECT_SIZE * 0.25 - 1) / SIZE  # visible part of a small object
    assert summary["box_width"]["max"] <= 0.6


def test_split_files(fifty):
    folder, ds = fifty
    train = (folder / "train.txt").read_text().split()
    val = (folder / "val.txt").read_text().split()
    assert len(val) == 10 and len(train) == 40
    assert sorted(train + val) == sorted(f"images/{s.image.name}" for s in ds)
    assert [s.image.name for s in load_dataset(folder / "val.txt")] == [Path(v).name for v in val]
    val_coco = load_dataset(folder / "val.json")
    assert [s.image.name for s in val_coco] == [Path(v).name for v in val]
    assert json.loads((folder / "val.json").read_text())["images"][0]["id"] == 1


def visible_box(owner: np.ndarray, k: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(owner == k)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_boxes_are_tight_around_the_drawn_pixels(fifty):
    folder, ds = fifty
    for index in range(12):
        scene = render_image(7, index, SIZE)
        on_disk = read_image(ds[index].image)
        assert np.array_equal(on_disk, scene.image)  # PNG is lossless
        labelled = ds[index].boxes_xyxy()
        assert len(labelled) == len(scene.objects)
        assert set(np.unique(scene.owner)) - {-1} == set(range(len(scene.objects)))  # no unlabelled fragments
        for k, obj in enumerate(scene.objects):
            # the label's edges are the first and one past the last row/column of the object's pixels
            np.testing.assert_allclose(labelled[k], visible_box(scene.owner, k), atol=1e-3)
            assert obj.cls == ds[index].classes[k]
            pixels = on_disk[scene.owner == k].astype(np.float64)
            assert np.abs(pixels.mean(axis=0) - obj.colour).max() < 40  # painted in its colour (+shade, noise)
            assert obj.visible_fraction >= MIN_VISIBLE_FRACTION


def test_object_colours_stand_out():
    contrasts = [o.contrast for i in range(20) for o in render_image(3, i, SIZE).objects]
    assert np.median(contrasts) > 60 and np.mean(np.array(contrasts) > 25) > 0.95


def square(x0: int, y0: int, side: int, cls: int = 0) -> ShapeMask:
    return ShapeMask(cls, x0, y0, np.ones((side, side), bool))


def test_occlusion_rule():
    masks = [square(0, 0, 10, cls=0),  # 15 of its 100 px stay visible under the next two: dropped
             square(1, 1, 10, cls=1),  # half hidden by the third: kept, with the box of its visible half
             square(6, 0, 12, cls=2),
             square(36, 36, 10, cls=3)]  # 16 of 100 px inside the 40x40 image: dropped
    kept, owner, fractions = resolve_occlusion(masks, 40, 40)
    assert [m.cls for m in kept] == [1, 2]
    np.testing.assert_allclose(fractions, [0.5, 1.0])
    assert tight_box(owner, 0, kept[0]) == (1, 1, 6, 11)
    assert tight_box(owner, 1, kept[1]) == (6, 0, 18, 12)
    # the dropped object is not painted at all: after removing it, what it covered is background
    assert owner[0, 0] == -1 and (owner >= 0).sum() == 50 + 144
    assert compose(masks, 40, 40)[0, 0] == 0  # (it would have shown there)
    stack = [square(0, 0, 4), square(0, 0, 4), ShapeMask(0, 0, 3, np.ones((1, 4), bool))]
    kept, _, fractions = resolve_occlusion(stack, 8, 8, min_visible=0.0001)
    # a fully hidden object goes at any threshold
    assert [m is s for m, s in zip(kept, stack[1:])] == [True, True] and fractions.tolist() == [0.75, 1.0]


def test_size_range_and_jpeg(tmp_path):
    ds = generate(tmp_path / "r", 6, size=range(64, 97), seed=0, image_format="jpg", max_objects=3)
    sizes = {(s.width, s.height) for s in ds}
    assert len(sizes) > 1 and all(64 <= w <= 96 and 64 <= h <= 96 for w, h in sizes)
    assert all(s.image.suffix == ".jpg" and read_image(s.image).shape[:2] == (s.height, s.width) for s in ds)
    assert all(len(s.classes) <= 3 for s in ds)


def test_rerun_replaces_own_files_and_refuses_foreign_folders(tmp_path):
    generate(tmp_path / "d", 3, size=64, seed=0, val_fraction=0.5)
    ds = generate(tmp_path / "d", 2, size=64, seed=1)  # an earlier output: replaced, stale files removed
    assert len(ds) == 2 and sorted(files(tmp_path / "d")) == [
        "annotations.json", "classes.names", "images/000000.png", "images/000001.png",
        "labels/000000.txt", "labels/000001.txt", "synthetic.json"]
    assert json.loads((tmp_path / "d" / "synthetic.json").read_text())["seed"] == 1
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.md").write_text("mine")
    with pytest.raises(FileError, match="folder is not empty and not a synthetic dataset"):
        generate(tmp_path / "e", 2, size=64, seed=1)
    assert len(generate(tmp_path / "e", 2, size=64, seed=1, overwrite=True)) == 2
    assert (tmp_path / "e" / "notes.md").read_text() == "mine"  # other files are left alone
    with pytest.raises(ValueError, match=">= 32 px"):
        generate(tmp_path / "f", 1, size=16)


def test_cli_synthetic(tmp_path, capsys):
    out = tmp_path / "cli"
    assert run(main, ["synthetic", str(out), "--images", "3", "--image-size", "80x64", "--seed", "5",
                      "--val-fraction", "0.34", "--quiet"]) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    assert len((out / "val.txt").read_text().split()) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("")
    assert run(main, ["synthetic", str(tmp_path / "mine"), "--images", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "folder is not empty" in err


@pytest.mark.parametrize("argv", [
    ["synthetic", "x", "--images", "0"],
    ["synthetic", "x", "--images", "2", "--image-size", "16"],
    ["synthetic", "x", "--images", "2", "--image-size", "96:64"],
    ["synthetic", "x", "--images", "2", "--val-fraction", "1"],
    ["synthetic", "x"],
    [],
])
def test_cli_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_module_entry_point_help():
    done = subprocess.run([sys.executable, "-m", "yolov3_trt.data", "synthetic", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--val-fraction" in done.stdout
