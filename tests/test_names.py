"""Tests for yolov3_trt.names: the built-in COCO list, names files and the class-count check."""
from __future__ import annotations

from pathlib import Path

import pytest

from yolov3_trt.errors import FileError, YoloV3TrtError
from yolov3_trt.names import COCO_NAMES, check_names, default_names, load_names

try:
    from helpers import SHARED
except ImportError:  # run from elsewhere: the shared folder sits beside the checkout
    SHARED = Path(__file__).resolve().parents[2] / "shared"

COCO_NAMES_FILE = SHARED / "darknet" / "cfg" / "coco.names"


@pytest.mark.skipif(not COCO_NAMES_FILE.is_file(), reason=f"{COCO_NAMES_FILE} not found")
def test_coco_names_match_darknet_file() -> None:
    expected = [line.strip() for line in COCO_NAMES_FILE.read_text().splitlines() if line.strip()]
    assert list(COCO_NAMES) == expected


def test_coco_names_shape() -> None:
    assert len(COCO_NAMES) == 80
    assert len(set(COCO_NAMES)) == 80
    assert COCO_NAMES[0] == "person" and COCO_NAMES[-1] == "toothbrush"


def test_load_names_strips_and_ignores_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "voc.names"
    path.write_text("  cat \r\ndog\t\nbig truck\n\n\n  \n")
    assert load_names(path) == ["cat", "dog", "big truck"]


def test_load_names_accepts_bom_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "bom.names"
    path.write_bytes("\ufeffa\nb".encode("utf-8"))
    assert load_names(path) == ["a", "b"]


def test_load_names_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.names"
    with pytest.raises(FileError, match="not found") as info:
        load_names(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n", "   \n"])
def test_load_names_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.names"
    path.write_text(content)
    with pytest.raises(FileError, match="empty") as info:
        load_names(path)
    assert str(path) in str(info.value)


def test_load_names_blank_line_in_middle(tmp_path: Path) -> None:
    path = tmp_path / "gap.names"
    path.write_text("a\n\nb\n")
    with pytest.raises(FileError, match="blank line 2") as info:
        load_names(path)
    assert str(path) in str(info.value)


def test_load_names_folder(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="folder"):
        load_names(tmp_path)


def test_load_names_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.names"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(FileError, match="cannot read"):
        load_names(path)


def test_default_names() -> None:
    assert default_names(80) == list(COCO_NAMES)
    assert default_names(3) == ["class0", "class1", "class2"]
    assert default_names(0) == []
    with pytest.raises(ValueError):
        default_names(-1)


def test_check_names() -> None:
    check_names(["a", "b"], 2, "x.names")
    with pytest.raises(YoloV3TrtError,
                       match=r"^names file voc\.names has 20 names but the model has 80 classes$"):
        check_names([f"n{i}" for i in range(20)], 80, "voc.names")
    with pytest.raises(YoloV3TrtError, match="has 1 names but the model has 2 classes"):
        check_names(["a"], 2)
