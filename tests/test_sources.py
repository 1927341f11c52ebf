"""Tests for yolov3_trt.sources: opening inputs, iterating frames, atomic annotated output."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3_trt import sources
from yolov3_trt.errors import FileError, ImageReadError
from yolov3_trt.sources import AnnotatedOutput, Frame, open_source

W, H = 64, 48


def write_image(path: Path, value: int = 100) -> np.ndarray:
    image = np.full((H, W, 3), value, np.uint8)
    image[:, : W // 2, 0] = 255 - value  # not uniform, so a BGR/RGB swap would show
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())
    return image


def write_video(path: Path, frames: int = 10, fps: float = 25.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((H, W, 3), i * 20, np.uint8))
    writer.release()


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic_path leaves behind if something went wrong."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    write_video(path)
    return path


# --- opening and iterating ----------------------------------------------------------------

def test_single_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    expected = write_image(path)
    with open_source(str(path)) as source:
        assert (source.kind, source.total, source.fps, source.stem) == ("images", 1, None, "photo")
        frames = list(source)
    assert [(f.name, f.index) for f in frames] == [("photo", 0)]
    np.testing.assert_array_equal(frames[0].image, expected)  # png is lossless


def test_folder_sorted_filtered_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "c.jpeg", "d.BmP", "e.tif", "f.webp"]:
        write_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._a.jpg").write_bytes(b"macOS resource fork")  # hidden: ignored
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "z.jpg")  # not recursive
    with open_source(tmp_path) as source:
        assert source.kind == "images" and source.total == 6
        frames = list(source)
        assert [f.name for f in frames] == ["a", "b", "c", "d", "e", "f"]
        assert [f.index for f in frames] == list(range(6))
        assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
        assert len(list(source)) == 6  # image sources can be iterated again


def test_duplicate_stems_keep_extension(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    with open_source(tmp_path) as source:
        assert [f.name for f in source] == ["a_jpg", "a_png", "b"]


def test_video(video: Path) -> None:
    with open_source(str(video)) as source:
        assert source.kind == "video" and source.stem == "clip"
        assert source.total == 10
        assert source.fps == pytest.approx(25.0)
        frames = list(source)
    assert [f.name for f in frames] == [f"clip_{i:06d}" for i in range(10)]
    assert [f.index for f in frames] == list(range(10))
    assert frames[3].image.shape == (H, W, 3) and frames[3].image.dtype == np.uint8
    assert abs(int(frames[3].image.mean()) - 60) < 8  # mp4v is lossy


def test_video_max_frames_and_single_pass(video: Path) -> None:
    with open_source(video, max_frames=4) as source:
        assert source.total == 4
        assert len(list(source)) == 4
        with pytest.raises(RuntimeError, match="once"):
            list(source)


class FakeCapture:
    """Stands in for cv2.VideoCapture on a camera: a fixed number of frames at 30 fps."""

    def __init__(self, index: int, frames: int = 1000, opened: bool = True):
        self.index, self.left, self.opened, self.released = index, frames, opened, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_COUNT: -1.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((H, W, 3), np.uint8)

    def release(self) -> None:
        self.released = True


def test_camera_with_max_frames(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # "0" must not be an existing path
    captures: list[FakeCapture] = []

    def fake_video_capture(index: int) -> FakeCapture:
        captures.append(FakeCapture(index))
        return captures[-1]

    monkeypatch.setattr(sources.cv2, "VideoCapture", fake_video_capture)
    with open_source("0", max_frames=5) as source:
        assert (source.kind, source.stem, source.total, source.fps) == ("camera", "camera0", 5, 30.0)
        names = [f.name for f in source]
    assert names == [f"camera0_{i:06d}" for i in range(5)]
    assert captures[0].index == 0 and captures[0].released


def test_camera_stops_when_it_stops_delivering(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda i: FakeCapture(i, frames=3))
    with open_source("2") as source:
        assert source.total is None
        assert len(list(source)) == 3


def test_closed_stream_cannot_be_iterated(video: Path) -> None:
    source = open_source(video)
    source.close()
    source.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        list(source)


def test_digit_named_file_is_not_a_camera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").mkdir()
    write_image(tmp_path / "0" / "x.jpg")
    with open_source("0") as source:
        assert source.kind == "images"


# --- errors -------------------------------------------------------------------------------

def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.jpg"
    with pytest.raises(FileError, match="no such file") as info:
        open_source(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileError, match="no images") as info:
        open_source(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_video_that_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video" * 10)
    with pytest.raises(ImageReadError, match="cannot open as a video") as info:
        open_source(path)
    assert str(path) in str(info.value)


def test_camera_that_cannot_be_opened(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda i: FakeCapture(i, opened=False))
    with pytest.raises(ImageReadError, match="camera 7: cannot open camera"):
        open_source("7")


def test_unreadable_image_in_folder_stops_with_its_name(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8 truncated jpeg")
    write_image(tmp_path / "c.jpg")
    with open_source(tmp_path) as source:
        iterator = iter(source)
        assert next(iterator).name == "a"
        with pytest.raises(ImageReadError) as info:
            next(iterator)
    assert str(bad) in str(info.value)


def test_unreadable_image_skipped_on_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_image(tmp_path / "a.jpg")
    (tmp_path / "b.png").write_bytes(b"")
    write_image(tmp_path / "c.jpg")
    with open_source(tmp_path, skip_unreadable=True) as source:
        assert [(f.name, f.index) for f in source] == [("a", 0), ("c", 2)]
    assert "b.png" in caplog.text


# --- annotated output ---------------------------------------------------------------------

def test_output_images(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ["x.png", "y.jpg"]:
        write_image(src / name)
    out = tmp_path / "out"
    with open_source(src) as source, AnnotatedOutput(out, source) as output:
        for frame in source:
            output.write(frame, frame.image)
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg", "y.jpg"]
    assert output.paths == [out / "x.jpg", out / "y.jpg"]
    assert cv2.imread(str(out / "x.jpg")).shape == (H, W, 3)


def test_output_video_complete(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open_source(video) as source, AnnotatedOutput(out, source) as output:
        for frame in source:
            output.write(frame, frame.image)
            assert not (out / "clip.mp4").exists()  # only appears when complete
    assert output.paths == [out / "clip.mp4"] and leftovers(out) == []
    with open_source(out / "clip.mp4") as result:
        assert result.total == 10 and result.fps == pytest.approx(25.0)
        assert len(list(result)) == 10


def test_output_video_failure_leaves_nothing(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyError, match="simulated"):
        with open_source(video) as source, AnnotatedOutput(out, source) as output:
            for frame in source:
                output.write(frame, frame.image)
                if frame.index == 5:
                    assert len(leftovers(out)) == 1  # the temporary file is being written
                    raise KeyError("simulated")
    assert list(out.iterdir()) == [] and output.paths == []


def test_output_video_keyboard_interrupt_leaves_nothing(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with open_source(video) as source, AnnotatedOutput(out, source) as output:
            for frame in source:
                output.write(frame, frame.image)
                raise KeyboardInterrupt
    assert list(out.iterdir()) == []


def test_output_video_no_frames_writes_nothing(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with open_source(video, max_frames=0) as source, AnnotatedOutput(out, source) as output:
        for frame in source:
            output.write(frame, frame.image)
    assert output.paths == [] and not out.exists()


def test_output_video_frame_size_change_fails_cleanly(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="frame size"):
        with open_source(video) as source, AnnotatedOutput(out, source) as output:
            for frame in source:
                output.write(frame, frame.image if frame.index < 2 else frame.image[:10])
    assert list(out.iterdir()) == []


def test_output_image_failure_keeps_finished_files_only(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ["a.png", "b.png", "c.png"]:
        write_image(src / name)
    out = tmp_path / "out"
    with pytest.raises(KeyError):
        with open_source(src) as source, AnnotatedOutput(out, source) as output:
            for frame in source:
                if frame.name == "b":
                    raise KeyError("simulated")
                output.write(frame, frame.image)
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"]


def test_frame_repr_omits_pixels() -> None:
    frame = Frame(name="x", index=3, image=np.zeros((2, 2, 3), np.uint8))
    assert repr(frame) == "Frame(name='x', index=3)"
