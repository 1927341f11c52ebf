"""python -m yolov3_trt.info."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from helpers import DARKNET

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
    assert info["activation_bytes"] == sum(4 * math.prod(layer["output"]) for layer in info["layers"])
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


@pytest.mark.parametrize("argv, words", [
    (["--size", "99999968"], "error: argument --size: '99999968': each side must be at most 8192 px (see python -m "
                             "yolov3_trt.info --help)"),
    (["--size", "100"], "error: argument --size: '100': width and height must be positive multiples of 32"),
    (["--size", "8192"], "error: <built-in yolov3>: layer 0 [convolutional] at input 8192x8192: output 32x8192x8192 = "
                         "2,147,483,648 values per image exceed 2,147,483,647"),
    (["--cfg", "{tmp}/wide.cfg"], "wide.cfg:2: [net] width=99999968 must be <= 8192 px"),
    (["--cfg", "{tmp}/filters.cfg"], "filters.cfg:4: layer 0 [convolutional] at input 64x64: weights "
                                     "2000000000x3x1x1 = 6,000,000,000 values exceed 2,147,483,647"),
    (["--cfg", "yolov3-tiny", "--classes", "1000000000"], "values exceed 2,147,483,647, the most one tensor may hold"),
])
def test_sizes_that_cannot_fit_are_refused_before_the_table(argv, words, tmp_path, capsys):
    """info used to print a table for them, and every other tool then died allocating (issue #13)."""
    (tmp_path / "wide.cfg").write_text("[net]\nwidth=99999968\nheight=416\n[convolutional]\n")
    (tmp_path / "filters.cfg").write_text("[net]\nwidth=64\nheight=64\n[convolutional]\nfilters=2000000000\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = run(main, argv)
    except SystemExit as exit_:  # argparse: one line as well (yolov3_trt.cli.common.ArgumentParser)
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], captured.err
