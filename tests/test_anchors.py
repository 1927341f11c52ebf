"""k-means anchors."""
from __future__ import annotations

import numpy as np
import pytest

from yolov3_trt.anchors import kmeans_anchors, main, shape_iou
from yolov3_trt.cli.common import run
from yolov3_trt.data.synthetic import generate


def test_recovers_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 14], [40, 30], [120, 200]], float)
    wh = np.concatenate([c * rng.uniform(0.95, 1.05, (200, 2)) for c in centres])
    anchors, iou = kmeans_anchors(wh, 3, seed=1)
    np.testing.assert_allclose(anchors, centres, rtol=0.03)
    assert iou > 0.9
    assert np.all(np.diff(anchors.prod(axis=1)) > 0)  # sorted small to large


def test_shape_iou():
    assert shape_iou(np.array([[2.0, 2.0]]), np.array([[2.0, 2.0], [1.0, 1.0], [4.0, 1.0]])).tolist() == [
        [1.0, 0.25, 2 / 6]]


def test_too_few_boxes():
    with pytest.raises(Exception, match="2 boxes cannot make 3 anchors"):
        kmeans_anchors(np.ones((2, 2)), 3)


def test_cli_prints_cfg_syntax(tmp_path, capsys):
    generate(tmp_path / "d", 10, size=160, seed=0)
    assert run(main, [str(tmp_path / "d"), "--size", "320", "--num", "6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# ") and "mean best IoU" in out[0]
    values = [int(v) for v in out[1].split("=", 1)[1].replace(" ", "").split(",")]
    assert len(values) == 12 and all(v > 0 for v in values)
