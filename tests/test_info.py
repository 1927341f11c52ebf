"""python -m yolov3_trt.info."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import DARKNET

from yolov3_trt.cli.common import run
from yolov3_trt.info import main


def test_table_and_totals(capsys):
    assert run(main, ["--cfg", "yolov3-tiny", "--size", "416"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("layer     filters")
    assert out[1] == "    0 conv     16  3 x 3 / 1   416 x 416 x   3   ->   416 x 416 x  16  0.150 BFLOPs"
    assert "5.565 BFLOPs, 8,852,366 parameters, .weights file 35,434,956 bytes" in out[-1]


def test_json(tmp_path):
    path = tmp_path / "info.json"
    assert run(main, ["--cfg", str(DARKNET / "cfg" / "yolov3.cfg"), "--size", "320", "--json", str(path)]) == 0
    info = json.loads(path.read_text())
    assert info["bflops"] == pytest.approx(38.973, abs=0.001)
    assert [h["stride"] for h in info["heads"]] == [32, 16, 8]
    assert info["weights_bytes"] == 248_007_048
    assert len(info["layers"]) == 107


def test_classes_flag_changes_heads(capsys):
    assert run(main, ["--cfg", "yolov3", "--classes", "3", "--json", "-"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [h["classes"] for h in info["heads"]] == [3, 3, 3]
    assert info["layers"][105]["output"][0] == 24


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "yolov3_trt.info", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--cfg" in done.stdout


@pytest.mark.parametrize("argv, words", [
    (["--cfg", "missing.cfg"], "missing.cfg: no such cfg file"),
    (["--cfg", "yolov9"], "yolov9: no such cfg file, nor a built-in model"),
])
def test_errors_are_one_line_exit_2(argv, words, capsys):
    assert run(main, argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {words}" + err.strip().split(words, 1)[1]]
    assert "Traceback" not in err
