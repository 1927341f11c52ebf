"""Training end to end: it learns, resumes exactly, and DDP equals one process."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from yolov3_trt.cli.common import run
from yolov3_trt.data.synthetic import generate
from yolov3_trt.model.checkpoint import load_checkpoint
from yolov3_trt.train.__main__ import main as train_main

# yolov3-tiny without batch norm: per-process BN statistics would make DDP differ from one
# process by design (SyncBatchNorm needs GPUs), and this test is about gradient synchronisation.
NO_BN_CFG = """[net]
width=64
height=64
channels=3
[convolutional]
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=16
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=16
size=3
stride=2
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=30
activation=linear
[yolo]
mask=0,1,2
anchors=8,8, 16,16, 32,32
classes=5
num=3
ignore_thresh=.7
truth_thresh=1
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    generate(folder, 8, size=128, seed=3, max_objects=3)
    return folder


def _history(path):
    _, _, extra = load_checkpoint(path)
    return extra["history"], extra["raw_model"]


def test_resume_continues_the_same_loss_curve(shapes, tmp_path):
    common = ["--data", str(shapes), "--val-fraction", "0", "--cfg", "yolov3-tiny", "--size", "64", "--batch-size", "4",
              "--lr", "0.001", "--warmup-epochs", "0", "--seed", "1"]  # as TrainConfig below
    assert run(train_main, [*common, "--epochs", "3", "--output", str(tmp_path / "straight")]) == 0
    # an interrupted 3-epoch run: stops after epoch 1 (as a crash would, with last.pt written)
    from yolov3_trt.data.dataset import load_dataset
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.train.init import init_heads
    from yolov3_trt.train.trainer import TrainConfig, Trainer
    data = load_dataset(shapes)
    torch.manual_seed(1)  # what the CLI does with --seed 1
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=len(data.names))
    init_heads(model)
    config = TrainConfig(size=64, batch=4, lr=0.001, warmup_epochs=0, seed=1, epochs=3)
    Trainer(model, list(data.names), data, None, config, tmp_path / "split").fit(until=1)
    assert run(train_main, ["--resume", str(tmp_path / "split" / "last.pt"), "--data", str(shapes),
                            "--val-fraction", "0", "--output", str(tmp_path / "split")]) == 0
    straight, w1 = _history(tmp_path / "straight" / "last.pt")
    resumed, w2 = _history(tmp_path / "split" / "last.pt")
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=1e-5, atol=1e-6), k
    assert (tmp_path / "split" / "metrics.csv").read_text().count("\n") == 4
    assert (tmp_path / "split" / "curves.png").exists()


def test_ddp_two_gloo_processes_equal_one_process(shapes, tmp_path):
    cfg = tmp_path / "nobn.cfg"
    cfg.write_text(NO_BN_CFG)
    common = ["-m", "yolov3_trt.train", "--data", str(shapes), "--val-fraction", "0", "--cfg", str(cfg),
              "--size", "64", "--batch-size", "4", "--epochs", "2", "--lr", "0.01", "--warmup-epochs", "0",
              "--no-ema", "--seed", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *common, "--output", str(tmp_path / "one")], capture_output=True,
                         text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", *common, "--output", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    h1, w1 = _history(tmp_path / "one" / "last.pt")
    h2, w2 = _history(tmp_path / "two" / "last.pt")
    assert len(h1) == len(h2) == 2
    for k in w1:
        assert torch.allclose(w1[k], w2[k], rtol=1e-4, atol=1e-6), k
    assert h1[-1]["loss"] == pytest.approx(h2[-1]["loss"], rel=1e-4)


def test_tiny_model_overfits_a_few_synthetic_images(tmp_path):
    """It learns: AP50 > 0.9 on the images it trained on (CI-sized: 4 images, 128 px)."""
    data = tmp_path / "data"
    generate(data, 4, size=128, seed=5, max_objects=3)
    out = tmp_path / "run"
    assert run(train_main, ["--data", str(data), "--val", str(data), "--cfg", "yolov3-tiny", "--size", "128",
                            "--batch-size", "2", "--epochs", "80", "--optimizer", "adamw", "--lr", "0.002",
                            "--weight-decay", "0", "--warmup-epochs", "2", "--no-augment", "--no-ema",
                            "--eval-every", "1000", "--output", str(out)]) == 0
    history, _ = _history(out / "last.pt")
    assert history[-1]["val_AP50"] > 0.9
    assert history[-1]["loss"] < history[0]["loss"] / 3


@pytest.mark.parametrize("argv, words", [
    ([], "give --data PATH"),
    (["--data", "{tmp}/missing"], "missing: no such file or folder"),
    (["--data", "{bad}"], "dog.txt:1: class id 7 out of range"),
    (["--data", "{shapes}", "--weights", "{tmp}/nope.weights"], "nope.weights: no such weights file"),
])
def test_train_cli_errors(argv, words, shapes, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "labels").mkdir()
    (bad / "images" / "dog.png").write_bytes((shapes / "images" / "000000.png").read_bytes())
    (bad / "labels" / "dog.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    (bad / "classes.names").write_text("a\nb\n")
    argv = [a.format(tmp=tmp_path, bad=bad, shapes=shapes) for a in argv]
    assert run(train_main, [*argv, "--cfg", "yolov3-tiny", "--epochs", "1", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "out" / "last.pt").exists()


def _poison(monkeypatch, at_call: int, grad_only: bool = False):
    """Make the loss of the ``at_call``-th batch (counted from 1) NaN, or keep it finite and make
    its gradient NaN (``grad_only``: sqrt at 0 has an infinite slope, times 0)."""
    from yolov3_trt.train.loss import YoloLoss

    real = YoloLoss.__call__
    calls = {"n": 0}

    def poisoned(self, outputs, targets, input_size):
        loss, parts = real(self, outputs, targets, input_size)
        calls["n"] += 1
        if calls["n"] == at_call:
            if grad_only:
                loss = loss + (outputs[0] * 0).abs().sqrt().sum()
            else:
                loss = loss * float("nan")
        return loss, parts

    monkeypatch.setattr(YoloLoss, "__call__", poisoned)


@pytest.mark.parametrize("grad_only", [False, True], ids=["nan-loss", "nan-gradient"])
def test_non_finite_step_stops_with_epoch_and_batch_and_is_never_saved(grad_only, shapes, tmp_path, monkeypatch,
                                                                       capsys):
    # 8 images, batch 4: 2 batches per epoch; call 4 is epoch 2, batch 2 (the epoch's last step)
    _poison(monkeypatch, 4, grad_only)
    out = tmp_path / "run"
    argv = ["--data", str(shapes), "--val-fraction", "0", "--cfg", "yolov3-tiny", "--size", "64", "--batch-size", "4",
            "--epochs", "3", "--output", str(out)]
    assert run(train_main, argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "epoch 2, batch 2 of 2" in err[0], err
    assert ("gradient is not finite" if grad_only else "loss is nan") in err[0], err
    assert "last.pt holds epoch 1" in err[0]
    model, _, extra = load_checkpoint(out / "last.pt")  # epoch 1's, intact
    assert [r["epoch"] for r in extra["history"]] == [1]
    for tensors in (model.state_dict(), extra["raw_model"]):
        assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def test_non_finite_weights_are_never_saved(shapes, tmp_path):
    from yolov3_trt.data.dataset import load_dataset
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.train.trainer import TrainConfig, Trainer, TrainingError

    data = load_dataset(shapes)
    trainer = Trainer(YoloV3.from_cfg("yolov3-tiny", num_classes=len(data.names)), list(data.names), data, None,
                      TrainConfig(size=64, batch=4, epochs=2), tmp_path)
    trainer.fit(until=1)
    before = (tmp_path / "last.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("inf"))
    trainer.epoch += 1
    with pytest.raises(TrainingError, match="epoch 2: the model weights are not finite, not saved; last.pt holds "
                                            "epoch 1"):
        trainer.save({"epoch": 2})
    assert (tmp_path / "last.pt").read_bytes() == before


@pytest.fixture(scope="module")
def two_shapes(tmp_path_factory):
    from two_shapes import write_two_shapes

    return write_two_shapes(tmp_path_factory.mktemp("two_shapes"), 32, size=256, seed=0)


@pytest.mark.slow
def test_tiny_from_scratch_learns_a_small_set_at_defaults(two_shapes, tmp_path):
    """Issue #13: 32 images of 2 classes, yolov3-tiny from scratch, default settings, 60 epochs
    (120 optimizer steps) once went NaN in epoch 7; now it learns: AP50 >= 0.5 on its own images."""
    out = tmp_path / "run"
    assert run(train_main, ["--data", str(two_shapes), "--val", str(two_shapes), "--cfg", "yolov3-tiny",
                            "--size", "256", "--epochs", "60", "--eval-every", "60", "--output", str(out)]) == 0
    history, _ = _history(out / "last.pt")
    assert all(math.isfinite(r["loss"]) and r["wh"] < 5 for r in history), [r["wh"] for r in history]
    assert history[-1]["val_AP50"] >= 0.5, history[-1]
    model, _, _ = load_checkpoint(out / "best.pt")
    assert model.input_size == (256, 256)


def test_evaluated_model_has_exact_batchnorm_statistics(shapes, tmp_path):
    """Before evaluation and saving, BN holds the mean/variance of its inputs on bn_images plain
    training images (here all 8, one batch), not the lagging running average."""
    from yolov3_trt.data.dataset import load_dataset
    from yolov3_trt.data.loader import TrainingData, collate
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.train.trainer import TrainConfig, Trainer

    data = load_dataset(shapes)
    torch.manual_seed(0)
    trainer = Trainer(YoloV3.from_cfg("yolov3-tiny", num_classes=len(data.names)), list(data.names), data, None,
                      TrainConfig(size=64, batch=8, epochs=1, bn_images=8), tmp_path)
    trainer.fit()
    model, _, _ = load_checkpoint(tmp_path / "last.pt")  # the EMA, with its own statistics
    images, _ = collate([TrainingData(data, 64, None)[i] for i in range(len(data))])
    first = model.layers[0]
    with torch.no_grad():
        x = first.conv(images)
    assert torch.allclose(first.bn.running_mean, x.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert torch.allclose(first.bn.running_var, x.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5)
