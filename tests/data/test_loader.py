"""Tests for yolov3_trt.data.loader: shapes, collate, reproducibility, workers, shards, multi-scale."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3_trt.data.augment import Augment
from yolov3_trt.data.dataset import DetectionDataset, Sample
from yolov3_trt.data.loader import EpochSampler, TrainingData, collate, make_loader, multiscale_size, resize_batch
from yolov3_trt.errors import ImageReadError
from yolov3_trt.preprocess import letterbox_size

SIZE = 64
IMAGE_SIZES = [(120, 80), (64, 64), (50, 100), (97, 61), (80, 80), (130, 40), (70, 90)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DetectionDataset:
    """Seven small images of different sizes, 0 to 3 boxes each (normalised cx, cy, w, h)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    samples = []
    for i, (w, h) in enumerate(IMAGE_SIZES):
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        n = i % 4
        centre = rng.uniform(0.3, 0.7, (n, 2))
        extent = rng.uniform(0.2, 0.5, (n, 2))
        samples.append(Sample(image=path, boxes=np.concatenate([centre, extent], axis=1).astype(np.float32),
                              classes=rng.integers(0, 3, n)))
    return DetectionDataset(samples=samples, names=["a", "b", "c"], source=str(folder))


def test_item_shapes_dtypes_and_ranges(dataset: DetectionDataset) -> None:
    data = TrainingData(dataset, SIZE, Augment(), seed=1)
    assert len(data) == len(IMAGE_SIZES)
    for index in range(len(data)):
        image, targets = data[index]
        assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert targets.dtype == torch.float32 and targets.ndim == 2 and targets.shape[1] == 5
        assert len(targets) <= len(dataset.samples[index].classes)
        boxes = targets[:, 1:]
        assert bool(((boxes >= 0) & (boxes <= 1)).all())
        # Boxes inside the canvas: cx ± w/2 in [0, 1].
        assert bool((boxes[:, :2] - boxes[:, 2:] / 2 >= -1e-6).all())
        assert bool((boxes[:, :2] + boxes[:, 2:] / 2 <= 1 + 1e-6).all())
        assert set(targets[:, 0].tolist()) <= set(dataset.samples[index].classes.tolist())


def test_plain_letterbox_targets(dataset: DetectionDataset) -> None:
    data = TrainingData(dataset, SIZE, None)
    index = 3  # 97 x 61, three boxes
    _, targets = data[index]
    sample = dataset.samples[index]
    w, h = IMAGE_SIZES[index]
    new_w, new_h = letterbox_size((w, h), (SIZE, SIZE))
    pad_x, pad_y = (SIZE - new_w) // 2, (SIZE - new_h) // 2
    expected = np.column_stack([
        (sample.boxes[:, 0] * new_w + pad_x) / SIZE, (sample.boxes[:, 1] * new_h + pad_y) / SIZE,
        sample.boxes[:, 2] * new_w / SIZE, sample.boxes[:, 3] * new_h / SIZE])
    np.testing.assert_allclose(targets[:, 1:].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(targets[:, 0].numpy(), sample.classes)
    image_a, _ = data[index]
    data.set_epoch(5)  # no augmentation: the epoch changes nothing
    assert torch.equal(data[index][0], image_a)


def test_collate_adds_batch_index(dataset: DetectionDataset) -> None:
    data = TrainingData(dataset, SIZE, None)
    batch = [data[i] for i in range(4)]  # 0, 1, 2, 3 boxes
    images, targets = collate(batch)
    assert images.shape == (4, 3, SIZE, SIZE)
    assert targets.shape == (6, 6) and targets.dtype == torch.float32
    assert targets[:, 0].tolist() == [1, 2, 2, 3, 3, 3]
    assert torch.equal(targets[:, 1:], torch.cat([t for _, t in batch]))
    _, empty = collate([data[0]])
    assert empty.shape == (0, 6)


def test_same_seed_epoch_index_same_sample(dataset: DetectionDataset) -> None:
    a = TrainingData(dataset, SIZE, Augment(), seed=3)
    b = TrainingData(dataset, SIZE, Augment(), seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for index in (2, 5):
        _ = b[0]  # what was loaded before must not matter
        ia, ta = a[index]
        ib, tb = b[index]
        assert torch.equal(ia, ib) and torch.equal(ta, tb)
    image_2, _ = a[5]
    a.set_epoch(3)
    assert not torch.equal(a[5][0], image_2)  # another epoch, another augmentation
    c = TrainingData(dataset, SIZE, Augment(), seed=4)
    c.set_epoch(2)
    assert not torch.equal(c[5][0], image_2)  # another seed, too


def batches(loader: torch.utils.data.DataLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader)


@pytest.fixture
def default_sigchld():
    """PyTorch installs a process-wide SIGCHLD handler (SA_ONSTACK) for DataLoader workers and never
    removes it; with a main-thread alternate signal stack that a later library leaves unusable, a
    child's exit then killed this test process with SIGSEGV in an unrelated test waiting on a
    subprocess. The default disposition is put back after the worker test."""
    import signal

    yield
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


@pytest.mark.usefixtures("default_sigchld")
def test_worker_count_does_not_change_batches(dataset: DetectionDataset) -> None:
    data = TrainingData(dataset, SIZE, Augment(), seed=9)
    serial = batches(make_loader(data, 3, shuffle=True, seed=9, epoch=4, workers=0))
    parallel = batches(make_loader(data, 3, shuffle=True, seed=9, epoch=4, workers=2))
    assert [len(images) for images, _ in serial] == [3, 3, 1]  # drop_last=False keeps the rest
    assert len(serial) == len(parallel)
    for (ia, ta), (ib, tb) in zip(serial, parallel):
        assert torch.equal(ia, ib) and torch.equal(ta, tb)
    # A resumed run builds a fresh loader for the epoch: same batches.
    again = batches(make_loader(TrainingData(dataset, SIZE, Augment(), seed=9), 3, True, 9, 4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(serial, again))


def test_loader_does_not_touch_global_torch_rng(dataset: DetectionDataset) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    batches(make_loader(TrainingData(dataset, SIZE, Augment()), 4, shuffle=True, seed=0, epoch=0))
    assert torch.equal(torch.rand(3), expected)


def test_shuffle_order_depends_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        return list(EpochSampler(50, shuffle=True, seed=seed, epoch=epoch))

    assert order(1, 2) == order(1, 2)
    assert sorted(order(1, 2)) == list(range(50))
    assert order(1, 2) != order(1, 3) and order(1, 2) != order(2, 2)
    assert order(0, 1) != order(1, 0)
    assert list(EpochSampler(5, shuffle=False, seed=0, epoch=7)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("n, world", [(10, 3), (7, 7), (3, 4), (64, 8)])
def test_distributed_shards_cover_each_index_once(n: int, world: int) -> None:
    shards = [list(EpochSampler(n, shuffle=True, seed=5, epoch=1, rank=r, world=world)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    even = [list(EpochSampler(n, shuffle=True, seed=5, epoch=1, rank=r, world=world, drop_last=True))
            for r in range(world)]
    assert len({len(shard) for shard in even}) == 1 and len(even[0]) == n // world
    flat = [i for shard in even for i in shard]
    assert len(set(flat)) == len(flat)


def test_distributed_loaders_cover_dataset_once(dataset: DetectionDataset) -> None:
    data = TrainingData(dataset, SIZE, None)
    full = torch.cat([images for images, _ in make_loader(data, 2, shuffle=False, seed=0, epoch=0)])
    seen = []
    for rank in range(3):
        loader = make_loader(data, 2, shuffle=True, seed=0, epoch=1, distributed=(rank, 3))
        seen.extend(images for batch, _ in loader for images in batch)
    assert len(seen) == len(dataset.samples)
    matches = sorted(next(i for i in range(len(full)) if torch.equal(full[i], image)) for image in seen)
    assert matches == list(range(len(dataset.samples)))
    with pytest.raises(ValueError, match="rank"):
        make_loader(data, 2, shuffle=False, seed=0, epoch=0, distributed=(3, 3))


def test_missing_image_raises(tmp_path: Path) -> None:
    missing = DetectionDataset([Sample(tmp_path / "gone.jpg", np.zeros((0, 4)), np.zeros(0))], ["a"], "x")
    with pytest.raises(ImageReadError):
        TrainingData(missing, SIZE, None)[0]


def test_multiscale_size() -> None:
    rng = np.random.default_rng(0)
    sizes = {multiscale_size(416, step, rng) for step in range(0, 2000, 10)}
    assert sizes == set(range(320, 609, 32))
    state = rng.bit_generator.state
    assert multiscale_size(416, 7, rng) == 416  # between draws: the size in use, rng untouched
    assert rng.bit_generator.state == state
    a = multiscale_size(416, 20, np.random.default_rng([1, 2]))
    assert a == multiscale_size(416, 20, np.random.default_rng([1, 2]))
    assert multiscale_size(416, 3, rng, every=1) % 32 == 0
    with pytest.raises(ValueError, match="multiples"):
        multiscale_size(416, 0, rng, low=300)


def test_resize_batch() -> None:
    images = torch.rand(2, 3, 64, 64)
    assert resize_batch(images, 64) is images
    bigger = resize_batch(images, 96)
    assert bigger.shape == (2, 3, 96, 96) and bigger.dtype == torch.float32
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(resize_batch(flat, 48), torch.full((1, 3, 48, 48), 0.25))
