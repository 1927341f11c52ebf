"""Output paths (issue 13): every tool checks its outputs before it works, never writes over an
input, replaces an earlier output only with --force, and leaves nothing half-written.

Each refusal case asserts exit 2, one ``error: ...`` line naming the file or option, no
traceback, and that nothing under the workspace or the case folder changed (inputs
byte-identical, no partial output, no temporary files: the snapshot hashes every file, hidden
ones included).
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import ROOT, random_model

from yolov3_trt.build.__main__ import main as build_main
from yolov3_trt.cli.common import run
from yolov3_trt.cli.outputs import (
    MANIFEST,
    OutputError,
    ResultFolder,
    StagedFiles,
    check_output_file,
    check_output_folder,
    check_writable_folder,
)
from yolov3_trt.data.__main__ import main as data_main
from yolov3_trt.detect import main as detect_main
from yolov3_trt.evaluate.__main__ import main as evaluate_main
from yolov3_trt.export.__main__ import main as export_main
from yolov3_trt.fileio import FileWriteError, atomic_write_text
from yolov3_trt.quantize.__main__ import main as quantize_main
from yolov3_trt.triton.__main__ import main as triton_main

TOOLS = {"detect": detect_main, "export": export_main, "quantize": quantize_main, "evaluate": evaluate_main,
         "build": build_main, "triton": triton_main, "data": data_main}
VIDEO_FRAMES = 12


def _write_video(path: Path, frames: int, fourcc: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """The inputs every case reads: a 6-class yolov3-tiny (Darknet weights and raw ONNX at 64),
    its names, two photos, a labelled synthetic set, a video and a truncated one."""
    from yolov3_trt.data.synthetic import SHAPE_NAMES, generate
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("ws")
    model = random_model(folder, "yolov3-tiny", num_classes=len(SHAPE_NAMES))
    export_onnx(model, folder / "raw.onnx", list(SHAPE_NAMES), size=(64, 64))
    (folder / "shapes.names").write_text("".join(f"{n}\n" for n in SHAPE_NAMES))
    photos = folder / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        cv2.imwrite(str(photos / f"{name}.jpg"), rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    generate(folder / "data", 3, size=64, seed=0)
    _write_video(folder / "clip.mp4", VIDEO_FRAMES, "mp4v")
    _write_video(folder / "whole.avi", 30, "MJPG")
    data = (folder / "whole.avi").read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) // 2])  # opens, claims 30 frames, has ~14
    return {"ws": folder, "weights": folder / "yolov3-tiny.weights", "onnx": folder / "raw.onnx",
            "names": folder / "shapes.names", "photos": photos, "photo": photos / "a.jpg", "data": folder / "data",
            "video": folder / "clip.mp4", "truncated": folder / "truncated.avi"}


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and folder under ``roots`` (hidden ones included) -> its SHA-256 ('dir' for folders)."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            key = str(path)
            found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def refused(tool: str, argv: list[str], capsys, names, roots) -> str:
    """Run ``tool``: exit 2, one line naming every one of ``names``, and ``roots`` unchanged."""
    before = snapshot(*roots)
    assert run(TOOLS[tool], argv) == 2
    line = error_line(capsys)
    for name in names:
        assert name in line, (name, line)
    assert snapshot(*roots) == before, "an input changed or output was left behind"
    return line


# --- the table -------------------------------------------------------------------------------

M = "--model {onnx}"
W = "--cfg yolov3-tiny --classes 6 --size 64 --weights {weights}"
E = "{data} --model {onnx} --output {out}"


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    argv: str  # {name}: a workspace path; {tmp}: the case folder; {out}: {tmp}/out (absent)
    names: tuple[str, ...]  # each must appear in the error line
    setup: tuple[tuple[str, str], ...] = ()  # ("file"|"dir"|"copy-onnx"|"link-weights"|"symlink-weights", path)


FILE = (("file", "blocker"),)
CASES = [
    # detect: the input photos, the video, the model never written over; wrong kinds; earlier outputs
    Case("detect-output-is-the-input-folder", "detect", "{photos} " + M + " --output {photos}", ("a.jpg", "--output")),
    Case("detect-output-is-the-input-video", "detect", "{video} " + M + " --output {video}", ("clip.mp4", "--output")),
    Case("detect-output-beside-the-video-replaces-it", "detect", "{video} " + M + " --output {ws}",
         ("clip.mp4", "--output")),
    Case("detect-output-is-a-file", "detect", "{photo} " + M + " --output {tmp}/blocker",
         ("blocker", "--output"), FILE),
    Case("detect-output-under-a-file", "detect", "{photo} " + M + " --output {tmp}/blocker/out",
         ("blocker", "--output"), FILE),
    Case("detect-json-is-a-folder", "detect", "{photo} " + M + " --output {out} --json {tmp}/j",
         ("/j:", "--json"), (("dir", "j"),)),
    Case("detect-json-under-a-file", "detect", "{photo} " + M + " --output {out} --json {tmp}/blocker/d.json",
         ("blocker", "--json"), FILE),
    Case("detect-json-is-an-input-photo", "detect", "{photos} " + M + " --output {out} --json {photo}",
         ("a.jpg", "--json", "input")),
    Case("detect-json-is-the-model", "detect", "{photo} " + M + " --output {out} --json {onnx}",
         ("raw.onnx", "--json", "input")),
    Case("detect-json-exists", "detect", "{photo} " + M + " --output {out} --json {tmp}/old.json",
         ("old.json", "--force"), (("file", "old.json"),)),
    Case("detect-json-named-like-an-annotated-image", "detect", "{photos} " + M + " --output {out} --json {out}/a.jpg",
         ("--json",)),
    Case("detect-earlier-detections-json", "detect", "{photo} " + M + " --output {tmp}/o",
         ("/o:", "earlier run", "--force"), (("file", "o/detections.json"),)),
    Case("detect-annotated-name-is-a-folder", "detect", "{photo} " + M + " --output {tmp}/o --force",
         ("a.jpg", "is a folder"), (("dir", "o/a.jpg"),)),
    Case("detect-truncated-video", "detect", "{truncated} " + M + " --output {out}",
         ("truncated.avi", "of 30 frames", "--tolerate-truncated")),
    Case("detect-stream-url-unreachable", "detect", "rtsp://user:secret@127.0.0.1:1/live/cam1 " + M + " --output {out}",
         ("rtsp://user:***@127.0.0.1:1/live/cam1", "cannot open the stream")),
    # export
    Case("export-output-is-the-weights", "export", W + " --output {weights}", ("yolov3-tiny.weights", "input")),
    Case("export-output-is-the-names", "export", W + " --names {names} --output {names}", ("shapes.names", "input")),
    Case("export-output-hard-link-to-the-weights", "export", W + " --output {tmp}/w.onnx",
         ("w.onnx", "input", "yolov3-tiny.weights"), (("link-weights", "w.onnx"),)),
    Case("export-output-symlink-to-the-weights", "export", W + " --output {tmp}/s.onnx",
         ("s.onnx", "input"), (("symlink-weights", "s.onnx"),)),
    Case("export-output-is-a-folder", "export", W + " --output {tmp}", ("is a folder", "--output")),
    Case("export-output-under-a-file", "export", W + " --output {tmp}/blocker/x.onnx", ("blocker", "--output"), FILE),
    Case("export-output-exists", "export", W + " --output {tmp}/x.onnx", ("x.onnx", "--force"), (("file", "x.onnx"),)),
    # quantize
    Case("quantize-output-is-the-model", "quantize", "{onnx} --fp16 --output {onnx}", ("raw.onnx", "input")),
    Case("quantize-output-is-a-folder", "quantize", "{onnx} --fp16 --output {tmp}", ("is a folder", "--output")),
    Case("quantize-output-under-a-file", "quantize", "{onnx} --fp16 --output {tmp}/blocker/q.onnx",
         ("blocker", "--output"), FILE),
    Case("quantize-output-exists", "quantize", "{onnx} --fp16 --output {tmp}/q.onnx", ("q.onnx", "--force"),
         (("file", "q.onnx"),)),
    Case("quantize-calib-cache-is-a-file", "quantize",
         "{onnx} --int8 --calib {photos} --calib-cache {tmp}/blocker --output {tmp}/q.onnx",
         ("blocker", "--calib-cache"), FILE),
    # evaluate
    Case("evaluate-json-is-a-folder", "evaluate", E + " --json {tmp}/j", ("/j:", "--json"), (("dir", "j"),)),
    Case("evaluate-json-under-a-file", "evaluate", E + " --json {tmp}/blocker/m.json", ("blocker", "--json"), FILE),
    Case("evaluate-output-is-a-file", "evaluate", "{data} --model {onnx} --output {tmp}/blocker",
         ("blocker", "--output"), FILE),
    Case("evaluate-json-is-the-annotations", "evaluate", E + " --json {data}/annotations.json",
         ("annotations.json", "input")),
    Case("evaluate-json-is-the-data-list", "evaluate", "--data {data}/annotations.json --model {onnx} --output {out} "
         "--json {data}/annotations.json", ("annotations.json", "input")),
    Case("evaluate-json-is-the-names-beside-a-coco-json", "evaluate", "{data}/annotations.json --model {onnx} "
         "--output {out} --json {data}/classes.names --force", ("classes.names", "input")),
    Case("evaluate-metrics-exist", "evaluate", E, ("metrics.json", "--force"), (("file", "out/metrics.json"),)),
    Case("evaluate-compare-plot-exists", "evaluate", "{data} --compare {onnx} {onnx} --output {out}",
         ("compare.png", "--force"), (("file", "out/compare.png"),)),
    # build (checked before the export, the quantization and the TensorRT probe)
    Case("build-output-is-the-model", "build", M + " --output {onnx}", ("raw.onnx", "input")),
    Case("build-output-is-a-folder", "build", M + " --output {tmp}", ("is a folder", "--output")),
    Case("build-output-under-a-file", "build", M + " --output {tmp}/blocker/e.engine", ("blocker",), FILE),
    Case("build-fp16-onnx-exists", "build", "--model {tmp}/raw.onnx --fp16",
         ("raw-fp16.onnx", "--force", "--model"), (("copy-onnx", "raw.onnx"), ("file", "raw-fp16.onnx"))),
    Case("build-exported-onnx-exists", "build", W + " --flavour end2end --output {tmp}/e.engine",
         ("yolov3-tiny-end2end.onnx", "--force"), (("file", "yolov3-tiny-end2end.onnx"),)),
    Case("build-engine-exists", "build", M + " --output {tmp}/e.engine", ("e.engine", "--force"),
         (("file", "e.engine"),)),
    Case("build-sidecar-is-a-folder", "build", M + " --output {tmp}/e.engine", ("e.engine.json", "is a folder"),
         (("dir", "e.engine.json"),)),
    # triton
    Case("triton-output-under-a-file", "triton", M + " --output {tmp}/blocker", ("blocker", "--output"), FILE),
    Case("triton-config-exists", "triton", M + " --output {tmp}/repo", ("config.pbtxt", "--force"),
         (("file", "repo/raw/config.pbtxt"),)),
    Case("triton-labels-is-a-folder", "triton", M + " --output {tmp}/repo --force", ("labels.txt", "is a folder"),
         (("dir", "repo/raw/labels.txt"),)),
    Case("triton-model-inside-its-repository", "triton", "--model {tmp}/repo/m/1/model.onnx --output {tmp}/repo "
         "--name m --force", ("model.onnx", "input")),
    # data
    Case("data-summary-json-is-the-annotations", "data", "summary {data} --json {data}/annotations.json",
         ("annotations.json", "input")),
    Case("data-summary-json-is-a-folder", "data", "summary {data} --json {tmp}", ("is a folder", "--json")),
    Case("data-summary-json-exists", "data", "summary {data} --json {tmp}/s.json", ("s.json", "--force"),
         (("file", "s.json"),)),
    Case("data-synthetic-out-is-a-file", "data", "synthetic {tmp}/blocker --images 1 --image-size 64 --quiet",
         ("blocker", "OUT"), FILE),
    Case("data-synthetic-out-under-a-file", "data", "synthetic {tmp}/blocker/d --images 1 --image-size 64 --quiet",
         ("blocker", "OUT"), FILE),
]
CASES_BY_ID = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES)


def _prepare(case: Case, ws: dict[str, Path], tmp: Path) -> None:
    for kind, rel in case.setup:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_bytes(b"an earlier output\n")
        elif kind == "dir":
            path.mkdir()
        elif kind == "copy-onnx":
            path.write_bytes(ws["onnx"].read_bytes())
        elif kind == "link-weights":
            os.link(ws["weights"], path)
        elif kind == "symlink-weights":
            path.symlink_to(ws["weights"])
    if case.id == "triton-model-inside-its-repository":
        (tmp / "repo" / "m" / "1").mkdir(parents=True)
        (tmp / "repo" / "m" / "1" / "model.onnx").write_bytes(ws["onnx"].read_bytes())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_before_any_work(case: Case, ws, tmp_path, capsys):
    _prepare(case, ws, tmp_path)
    words = {k: str(v) for k, v in ws.items()} | {"tmp": str(tmp_path), "out": str(tmp_path / "out")}
    argv = [w.format(**words) for w in shlex.split(case.argv)]
    refused(case.tool, argv, capsys, case.names, [ws["ws"], tmp_path])


def test_the_table_covers_every_tool_that_writes():
    assert {c.tool for c in CASES} == set(TOOLS) and len(CASES) >= 45


def test_the_command_line_exits_2_with_one_line(ws, tmp_path):
    """The real ``python -m`` entry point: no traceback, the weights untouched."""
    before = ws["weights"].read_bytes()
    result = subprocess.run([sys.executable, "-m", "yolov3_trt.export", *shlex.split(W.format(weights=ws["weights"])),
                             "--output", str(ws["weights"])], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {ws['weights']}: is an input of this run; choose another "
                                                  "--output (nothing is ever written over an input)"]
    assert ws["weights"].read_bytes() == before


# --- detect: earlier runs, --force, failures mid-way -----------------------------------------

def _detect(ws, *args: str) -> int:
    return run(detect_main, [*map(str, args), "--model", str(ws["onnx"]), "--conf", "0.05"])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_detect_repeat_run_needs_force_and_leaves_no_stale_results(ws, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    assert _detect(ws, ws["photos"], "--output", out) == 0
    first = _files(out)
    assert sorted(first) == [MANIFEST, "a.jpg", "b.jpg", "detections.json"]
    assert json.loads(first[MANIFEST]) == {"tool": "yolov3_trt.detect", "files": ["a.jpg", "b.jpg", "detections.json"]}
    capsys.readouterr()
    line = refused("detect", [str(ws["photos"]), "--model", str(ws["onnx"]), "--output", str(out)], capsys,
                   (str(out), "earlier run", "a.jpg", "--force"), [ws["ws"], tmp_path])
    assert line == (f"error: {out}: holds results of an earlier run (a.jpg, b.jpg, detections.json; 3 files); "
                    "pass --force to replace them, or choose another --output")
    # --force with only one photo: b.jpg of the first run goes, nothing of it is left beside the new JSON
    (out / "mine.txt").write_text("not a result: kept")
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.jpg").write_bytes(ws["photo"].read_bytes())
    with caplog.at_level(logging.INFO, logger="yolov3_trt.cli.outputs"):
        assert _detect(ws, one, "--output", out, "--force") == 0
    assert ("replacing the earlier run's results in" in caplog.text
            and "removed 1 of the earlier run's files" in caplog.text)
    second = _files(out)
    assert sorted(second) == [MANIFEST, "a.jpg", "detections.json", "mine.txt"]
    assert {r["file_name"] for r in json.loads(second["detections.json"])} <= {"a.jpg"}
    assert json.loads(second[MANIFEST])["files"] == ["a.jpg", "detections.json"]


def test_detect_failure_mid_way_leaves_the_earlier_results(ws, tmp_path, capsys):
    out = tmp_path / "out"
    assert _detect(ws, ws["photos"], "--output", out) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (broken / name).write_bytes(ws["photo"].read_bytes())
    (broken / "c.jpg").write_bytes(b"\xff\xd8 not a whole jpeg")  # read after a and b were annotated
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert _detect(ws, broken, "--output", out, "--force") == 2
    assert "c.jpg" in error_line(capsys)
    assert snapshot(tmp_path) == before  # no new a.jpg, no staging folder, the old JSON


def test_detect_failure_in_a_new_folder_leaves_no_folder(ws, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(ws["photo"].read_bytes())
    (broken / "b.jpg").write_bytes(b"")
    assert _detect(ws, broken, "--output", tmp_path / "new" / "out", "--json", tmp_path / "j" / "d.json") == 2
    assert "b.jpg" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no new/, no j/, no temporary files


def test_detect_into_the_input_folder_only_beside_the_photos(ws, tmp_path, capsys):
    """PNG photos and JPEG results do not collide: allowed, photos byte-identical. The next run
    reads the earlier results as photos, so even --force refuses: it would remove inputs."""
    photos = tmp_path / "pngs"
    photos.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(photos / f"{name}.png"), cv2.imread(str(ws["photo"])))
    before = snapshot(photos)
    assert _detect(ws, photos, "--output", photos) == 0
    after = snapshot(photos)
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(Path(k).name for k in after if k not in before) == [MANIFEST, "a.jpg", "b.jpg", "detections.json"]
    capsys.readouterr()
    refused("detect", [str(photos), "--model", str(ws["onnx"]), "--output", str(photos), "--force"], capsys,
            ("a.jpg", "input"), [photos])


def test_detect_truncated_video_tolerated_on_request(ws, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert _detect(ws, ws["truncated"], "--output", out, "--tolerate-truncated") == 0
    assert "truncated.avi: video ended after" in caplog.text and "of 30 frames" in caplog.text
    capture = cv2.VideoCapture(str(out / "truncated.mp4"))
    assert 0 < int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) < 30
    capture.release()


@pytest.fixture()
def http_server(ws):
    """A local HTTP server over the workspace: a network stream without a network."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ws["ws"]))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_detect_reads_an_http_stream_through_opencv(ws, tmp_path, http_server):
    out = tmp_path / "out"
    assert _detect(ws, f"{http_server}/clip.mp4", "--output", out, "--max-frames", "5") == 0
    assert sorted(_files(out)) == [MANIFEST, "clip.mp4", "detections.json"]  # not http:/127.0.0.1... as a path
    records = json.loads((out / "detections.json").read_text())
    assert {r["file_name"] for r in records} <= {"clip.mp4"} and {r["image_id"] for r in records} <= set(range(5))


def test_detect_file_url_is_the_local_path(ws, tmp_path):
    out = tmp_path / "out"
    assert _detect(ws, ws["photo"].as_uri(), "--output", out, "--no-draw") == 0
    assert sorted(_files(out)) == [MANIFEST, "detections.json"]


def test_export_force_replaces_and_says_so(ws, tmp_path, caplog):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"an earlier export")
    with caplog.at_level(logging.INFO, logger="yolov3_trt.cli.outputs"):
        assert run(export_main, [*shlex.split(W.format(weights=ws["weights"])), "--output", str(out), "--force"]) == 0
    assert f"replacing {out} (--force)" in caplog.text
    assert out.read_bytes()[:2] != b"an" and sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"]


# --- the module itself -----------------------------------------------------------------------

def test_check_output_file_cases(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    inputs = [tmp_path / "file"]
    table = [
        (tmp_path / "folder", {}, "is a folder; --output needs a file name"),
        (tmp_path / "file", {}, "is an input of this run"),
        (tmp_path / "folder" / ".." / "file", {}, "is an input of this run"),  # compared resolved
        (tmp_path / "file" / "x.json", {}, f"cannot be written: {tmp_path / 'file'} is a file, not a folder"),
        (tmp_path / "file" / "deeper" / "x.json", {}, f"cannot be written: {tmp_path / 'file'} is a file"),
        (tmp_path / "folder" / "exists", {"existing": True}, "exists; pass --force"),
    ]
    for path, opts, message in table:
        if opts.get("existing"):
            path.write_text("old")
        with pytest.raises(OutputError) as info:
            check_output_file(path, inputs=inputs, option="--output")
        assert message in str(info.value) and str(info.value).startswith(str(path)), str(info.value)
    assert (check_output_file(tmp_path / "folder" / "exists", inputs=inputs, force=True)
            == tmp_path / "folder" / "exists")
    assert check_output_file(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # no probe file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder whatever its permission bits")
def test_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match="cannot write in this folder"):
            check_writable_folder(locked / "sub")
    finally:
        locked.chmod(0o700)


def test_check_output_folder_refuses_an_input_file(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with pytest.raises(OutputError, match="is an input file of this run"):
        check_output_folder(tmp_path / "clip.mp4", inputs=[tmp_path / "clip.mp4"])
    assert check_output_folder(tmp_path, inputs=[tmp_path / "clip.mp4"]) == tmp_path  # a folder may hold inputs


def test_staged_files_appear_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "new" / "a.json", tmp_path / "b.txt"
    with pytest.raises(RuntimeError):
        with StagedFiles([a, b]) as staged:
            staged[a].write_text("a")
            raise RuntimeError("mid-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the folder it made is gone too
    with StagedFiles([a, b]) as staged:
        staged[a].write_text("a")
        staged[b].write_text("b")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "a" and b.read_text() == "b"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.txt", "new"]


def test_result_folder_new_folder_appears_whole(tmp_path):
    folder = ResultFolder(tmp_path / "runs" / "x", ["r.jpg"], tool="detect")
    folder.check()
    with pytest.raises(KeyboardInterrupt):
        with folder:
            (folder.staging / "r.jpg").write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    folder = ResultFolder(tmp_path / "runs" / "x", ["r.jpg"], tool="detect")
    folder.check()
    with folder:
        (folder.staging / "r.jpg").write_bytes(b"whole")
    assert _files(tmp_path / "runs" / "x") == {MANIFEST: json.dumps({"tool": "yolov3_trt.detect", "files": ["r.jpg"]},
                                                                    indent=1).encode() + b"\n", "r.jpg": b"whole"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"]


def test_result_folder_ignores_manifest_entries_outside_it(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"files": ["../keep.txt", "/etc/passwd", "gone.jpg"]}))
    (out / "gone.jpg").write_text("stale")
    folder = ResultFolder(out, ["new.jpg"], tool="detect", force=True)
    folder.check()
    with folder:
        (folder.staging / "new.jpg").write_text("new")
    assert (tmp_path / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "new.jpg"] and folder.removed == ["gone.jpg"]


def test_atomic_write_under_a_file_is_one_line_and_an_oserror(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileWriteError) as info:
        atomic_write_text(tmp_path / "file" / "x.json", "{}")
    assert isinstance(info.value, OSError) and info.value.errno is not None
    assert str(info.value) == f"{tmp_path / 'file' / 'x.json'}: cannot write: a file is in the way of its folder " \
                              f"{tmp_path / 'file'}"
    with pytest.raises(FileWriteError, match="a folder of that name is in the way"):
        atomic_write_text(tmp_path, "{}")  # a folder where the file should go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
