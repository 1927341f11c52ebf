"""Files that ship with the package: Darknet's sample photo ``dog.jpg`` (from pjreddie/darknet's
``data/``), so the first command has a real picture to run on.

    python -m yolov3_trt.detect "$(python -c 'import yolov3_trt.assets as a; print(a.SAMPLE)')" --weights yolov3-tiny
"""
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
SAMPLE = FOLDER / "dog.jpg"
