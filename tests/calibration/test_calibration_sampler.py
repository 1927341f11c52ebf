"""Calibration sampling: seeded, stratified by dominant class, clear errors; preprocessing = runtime's."""
from __future__ import annotations

import collections

import cv2
import numpy as np
import pytest

from yolov3_trt.calibration import CalibrationError, load_calibration_images, sample_images
from yolov3_trt.calibration.sampler import _allocate
from yolov3_trt.preprocess import preprocess, read_image


def _images(folder, count, start=0, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        image = np.full((size[1], size[0], 3), i % 256, np.uint8)
        path = folder / f"{i:04d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def _labelled(root, strata):
    """A YOLO folder: strata = {class id or -1: image count}; each image's boxes make that class dominant."""
    images, labels = root / "images", root / "labels"
    labels.mkdir(parents=True)
    start, truth = 0, {}
    for cls, count in strata.items():
        for path in _images(images, count, start):
            lines = [] if cls < 0 else [f"{cls} 0.5 0.5 0.2 0.2"] * 2 + [f"{(cls + 1) % 3} 0.3 0.3 0.1 0.1"]
            (labels / (path.stem + ".txt")).write_text("\n".join(lines) + "\n")
            truth[path.name] = cls
        start += count
    (root / "classes.names").write_text("a\nb\nc\n")
    return truth


def test_same_seed_same_pick_other_seed_other_pick(tmp_path):
    _images(tmp_path / "imgs", 30)
    a = sample_images(tmp_path / "imgs", 8, seed=0)
    assert a == sample_images(tmp_path / "imgs", 8, seed=0)
    assert len(set(a)) == 8
    assert a != sample_images(tmp_path / "imgs", 8, seed=1)


def test_stratified_by_dominant_class_in_proportion(tmp_path):
    truth = _labelled(tmp_path / "set", {0: 60, 1: 20, 2: 10, -1: 10})
    picked = sample_images(tmp_path / "set", 10, seed=3)
    counts = collections.Counter(truth[p.name] for p in picked)
    assert counts == {0: 6, 1: 2, 2: 1, -1: 1}
    # every stratum is represented even when proportion would round it away
    picked = sample_images(tmp_path / "set", 4, seed=0)
    assert collections.Counter(truth[p.name] for p in picked) == {0: 1, 1: 1, 2: 1, -1: 1}


def test_image_list_and_explicit_files(tmp_path):
    truth = _labelled(tmp_path / "set", {0: 6, 1: 6})
    listing = tmp_path / "set" / "list.txt"
    listing.write_text("".join(f"images/{name}\n" for name in sorted(truth)))
    picked = sample_images(listing, 4, seed=0)
    assert collections.Counter(truth[p.name] for p in picked) == {0: 2, 1: 2}
    files = sorted((tmp_path / "set" / "images").glob("*.png"))[:3]
    assert sorted(sample_images(files, 3)) == files


@pytest.mark.parametrize("allocation", [([60, 20, 10, 10], 10), ([5, 1], 3), ([1, 1, 1], 2), ([7], 7), ([3, 3, 3], 9)])
def test_allocation_sums_exactly_and_respects_sizes(allocation):
    sizes, n = allocation
    counts = _allocate(sizes, n)
    assert sum(counts) == n
    assert all(0 <= c <= s for c, s in zip(counts, sizes))


def test_errors_name_the_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match=r"empty: no images found .*calibration set is empty"):
        sample_images(tmp_path / "empty", 4)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("hello")
    with pytest.raises(CalibrationError, match="texts: no images found"):
        sample_images(tmp_path / "texts", 1)
    with pytest.raises(CalibrationError, match="missing: no such file or folder"):
        sample_images(tmp_path / "missing", 1)
    with pytest.raises(CalibrationError, match=r"notes.txt: not an image file"):
        sample_images([tmp_path / "texts" / "notes.txt"], 1)
    _images(tmp_path / "few", 3)
    with pytest.raises(CalibrationError, match=r"few: has 3 images but 8 calibration images were asked for"):
        sample_images(tmp_path / "few", 8)
    for err in (CalibrationError(tmp_path, "x"),):
        assert "\n" not in str(err)


def test_undecodable_image_is_named(tmp_path):
    paths = _images(tmp_path / "imgs", 2)
    bad = tmp_path / "imgs" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(CalibrationError, match=r"broken.png: calibration image: not a decodable image"):
        load_calibration_images([*paths, bad], (64, 64), progress=False)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_preprocessing_is_exactly_the_runtimes(tmp_path, mode):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), rng.integers(0, 256, (70, 130, 3), dtype=np.uint8))
    got = load_calibration_images([path, path], (96, 64), mode=mode, progress=False)
    expected = preprocess([read_image(path)], (96, 64), mode=mode)[0]
    assert got.shape == (2, 3, 64, 96) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[0])
