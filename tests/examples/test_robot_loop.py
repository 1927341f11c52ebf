"""The robot-loop example runs on a video file and shuts down cleanly."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers import DARKNET, ROOT, random_model

from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.names import COCO_NAMES


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robot")
    export_onnx(random_model(folder, name="t.weights"), folder / "t.onnx", COCO_NAMES, size=(160, 160))
    photo = cv2.resize(cv2.imread(str(DARKNET / "images" / "dog.jpg")), (160, 120))
    for name, frames in (("clip.mp4", 40), ("long.mp4", 400)):  # long: 20 s when paced at 20 fps
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"mp4v"), 20, (160, 120))
        for i in range(frames):
            writer.write(np.roll(photo, 3 * i, axis=1))
        writer.release()
    return folder


def test_runs_to_the_end_of_a_video(setup):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "robot_loop.py"), str(setup / "clip.mp4"),
                           "--model", str(setup / "t.onnx"), "--max-frames", "25"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "stopped:" in last and "dropped" in last
    detected = int(last.split("stopped: ")[1].split(" frames")[0])
    dropped = int(last.split("detected, ")[1].split(" dropped")[0])
    assert detected + dropped == 25 and detected > 0


def test_sigterm_stops_cleanly(setup):
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "robot_loop.py"), str(setup / "long.mp4"),
                             "--model", str(setup / "t.onnx"), "--realtime", "--report", "1"],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until it runs: a latency report came
        if "frames," in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped:" in err
    assert time.monotonic() - start < 20  # stopped by the signal, not by the end of the video
