"""A robot's perception loop: a camera thread feeding a Detector, latency stats, clean shutdown.

    python examples/robot_loop.py --model yolov3-416.onnx 0            # camera 0, until Ctrl-C
    python examples/robot_loop.py --model yolov3-416.onnx clip.mp4 --max-frames 100

The camera thread keeps only the newest frame: a robot acts on what is in front of it now, so
when detection is slower than the camera, stale frames are dropped (and counted) rather than
queued. The main thread detects, hands the result to ``act`` (replace it with your controller)
and logs latency every ``--report`` seconds: detection time and capture-to-result age. SIGINT
and SIGTERM stop both threads, release the camera and free the model.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from yolov3_trt import Detections, Detector

logger = logging.getLogger("robot_loop")


@dataclass
class Frame:
    image: np.ndarray
    captured: float  # time.monotonic() when read
    index: int


class LatestFrame:
    """A one-slot mailbox: the camera overwrites, the detector takes the newest."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def camera_thread(source: str, mailbox: LatestFrame, stop: threading.Event, max_frames: int | None,
                  realtime: bool) -> None:
    """Read frames until stopped or the stream ends; a file is paced at its own fps when ``realtime``."""
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        logger.error("%s: cannot open", source)
        mailbox.close()
        stop.set()
        return
    period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 30.0) if realtime and not source.isdigit() else 0.0
    index = 0
    try:
        while not stop.is_set() and (max_frames is None or index < max_frames):
            ok, image = capture.read()
            if not ok:
                break
            mailbox.put(Frame(image, time.monotonic(), index))
            index += 1
            if period:
                time.sleep(period)
    finally:
        capture.release()
        mailbox.close()


def act(detections: Detections, frame: Frame) -> None:
    """Your robot's reaction. Here: log the nearest-looking (largest) object."""
    if len(detections):
        areas = (detections.boxes[:, 2] - detections.boxes[:, 0]) * (detections.boxes[:, 3] - detections.boxes[:, 1])
        i = int(np.argmax(areas))
        logger.debug("frame %d: %s %.2f at %s", frame.index, detections.class_names[i], detections.scores[i],
                     np.round(detections.boxes[i]).astype(int).tolist())


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    v = np.asarray(values)
    return f"p50 {np.percentile(v, 50):.1f} / p90 {np.percentile(v, 90):.1f} / max {v.max():.1f} ms"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Camera -> Detector loop with latency stats")
    p.add_argument("source", help="camera index (0) or a video file")
    p.add_argument("--model", required=True, help="exported .onnx (or a checkpoint .pt)")
    p.add_argument("--conf", type=float, default=None)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--report", type=float, default=5.0, help="seconds between latency reports")
    p.add_argument("--realtime", action="store_true", help="pace a video file at its fps, like a camera")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    mailbox = LatestFrame()
    detect_ms: list[float] = []
    age_ms: list[float] = []
    processed = 0
    with Detector(args.model, conf=args.conf) as detector:
        reader = threading.Thread(target=camera_thread, name="camera", daemon=True,
                                  args=(args.source, mailbox, stop, args.max_frames, args.realtime))
        reader.start()
        last_report = time.monotonic()
        while not stop.is_set():
            frame = mailbox.take(timeout=0.5)
            if frame is None:
                if mailbox.closed:
                    break
                continue
            detections = detector.detect(frame.image)
            done = time.monotonic()
            detect_ms.append(detector.last_timings["total"])
            age_ms.append((done - frame.captured) * 1e3)
            processed += 1
            act(detections, frame)
            if done - last_report >= args.report:
                logger.info("%d frames, %d dropped; detect %s; capture-to-result %s", processed, mailbox.dropped,
                            stats(detect_ms), stats(age_ms))
                last_report = done
        stop.set()
        reader.join(timeout=5)
    logger.info("stopped: %d frames detected, %d dropped; detect %s; capture-to-result %s", processed,
                mailbox.dropped, stats(detect_ms), stats(age_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
