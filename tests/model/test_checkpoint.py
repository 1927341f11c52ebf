"""The project's checkpoint format."""
from __future__ import annotations

import pytest
import torch

from yolov3_trt.errors import CheckpointError, FileError
from yolov3_trt.model.checkpoint import load_checkpoint, save_checkpoint
from yolov3_trt.model.yolov3 import YoloV3


def test_checkpoint_round_trip_with_custom_classes_and_anchors(tmp_path):
    anchors = [(5, 6), (7, 8), (9, 10), (20, 30), (40, 50), (60, 70)]
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=3, anchors=anchors).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, ["cat", "dog", "robot"], extra={"epoch": 4})
    # loadable with the safe loader: no pickled code
    assert torch.load(path, weights_only=True)["names"] == ["cat", "dog", "robot"]
    loaded, names, extra = load_checkpoint(path)
    loaded.eval()
    assert names == ["cat", "dog", "robot"] and extra == {"epoch": 4}
    assert loaded.heads == model.heads
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)


def test_names_must_match_classes(tmp_path):
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=3)
    with pytest.raises(Exception, match="2 class names for a model with 3 classes"):
        save_checkpoint(tmp_path / "m.pt", model, ["a", "b"])
    assert not list(tmp_path.iterdir())


def test_foreign_files(tmp_path):
    state = tmp_path / "state.pt"
    torch.save(YoloV3.from_cfg("yolov3-tiny").state_dict(), state)
    with pytest.raises(CheckpointError, match="state.pt: not a yolov3_trt.checkpoint file"):
        load_checkpoint(state)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pt: not a loadable PyTorch checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(FileError, match="none.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "none.pt")
