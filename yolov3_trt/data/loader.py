"""Training batches in torch: a reproducible ``Dataset``, its collate, loader and multi-scale helpers.

Reproducibility. A sample's randomness is ``np.random.default_rng([seed, epoch, index])``, built
afresh in ``__getitem__``; the shuffle order is ``np.random.default_rng([seed, epoch])``. So a
sample depends only on (seed, epoch, index) — not on the worker that loads it, the number of
workers, the rank, or what ran before — and a run resumed at an epoch sees the same data as an
uninterrupted one. torch's and Python's global generators are neither used nor consumed.

Targets are ``[class, cx, cy, w, h]`` normalised to the square input, so resizing a whole batch
(:func:`resize_batch`, the paper's multi-scale training) leaves them unchanged.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from yolov3_trt.data.augment import Augment, letterbox_with_boxes
from yolov3_trt.data.dataset import DetectionDataset, cxcywh_to_xyxy, xyxy_to_cxcywh
from yolov3_trt.preprocess import read_image

Item = tuple[torch.Tensor, torch.Tensor]


def _targets(boxes: np.ndarray, classes: np.ndarray, size: int) -> torch.Tensor:
    """``(M, 4)`` xyxy canvas pixels and ``(M,)`` classes → float32 ``(M, 5)`` [class, cx, cy, w, h] / size."""
    targets = np.empty((len(classes), 5), dtype=np.float32)
    targets[:, 0] = classes
    targets[:, 1:] = xyxy_to_cxcywh(boxes, size, size)
    return torch.from_numpy(targets)


class TrainingData(Dataset):
    """A :class:`DetectionDataset` as square network inputs and normalised targets.

    Args:
        dataset: samples (image paths, normalised cx/cy/w/h boxes, classes) and class names.
        size: side of the square input.
        augment: training augmentation, or None for the plain letterbox (evaluation).
        seed: base of every sample's random generator (see the module docstring).

    Call :meth:`set_epoch` before iterating each epoch (``make_loader`` does); with DataLoader
    workers that must happen before the loader's iterator is created, so use non-persistent
    workers (the default).
    """

    def __init__(self, dataset: DetectionDataset, size: int, augment: Augment | None, seed: int = 0):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.dataset = dataset
        self.size = int(size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose augmentation ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset.samples)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> Item:
        """Sample ``index`` as ``(image, targets)``.

        Returns:
            image: float32 ``(3, size, size)`` RGB in [0, 1].
            targets: float32 ``(N, 5)`` ``[class, cx, cy, w, h]``, coordinates normalised to the
                input (in [0, 1]); boxes cut off by the augmentation are dropped.

        Raises:
            ImageReadError: the image file cannot be read.
        """
        sample = self.dataset.samples[index]
        rgb = cv2.cvtColor(read_image(sample.image), cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]  # the decoded size, which is what the boxes are relative to
        boxes = cxcywh_to_xyxy(sample.boxes, width, height)
        if self.augment is None:
            out, boxes, classes = letterbox_with_boxes(rgb, boxes, sample.classes, self.size)
        else:
            out, boxes, classes = self.augment(rgb, boxes, sample.classes, self.size, self.rng(index))
        image = torch.from_numpy(out).permute(2, 0, 1).float().div_(255.0)
        return image.contiguous(), _targets(boxes, classes, self.size)


def collate(batch: Sequence[Item]) -> Item:
    """Stack ``(image, targets)`` items into a batch.

    Returns:
        images: float32 ``(B, 3, S, S)``.
        targets: float32 ``(M, 6)`` ``[batch_index, class, cx, cy, w, h]``, all items' targets
            in batch order (``M`` = total number of boxes, possibly 0).
    """
    images = torch.stack([image for image, _ in batch])
    rows = [torch.cat([torch.full((len(t), 1), float(i)), t.reshape(-1, 5)], dim=1)
            for i, (_, t) in enumerate(batch)]
    targets = torch.cat(rows) if rows else torch.zeros((0, 6))
    return images, targets


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank: a permutation from ``(seed, epoch)`` (or ``0..n-1``
    when not shuffling), and of it the items ``rank, rank + world, ...``.

    Unlike ``DistributedSampler`` nothing is padded: the ranks' shards together hold every index
    exactly once (what evaluation needs). With ``drop_last`` the order is cut to a multiple of
    ``world`` first, so all shards are the same length (what DDP training needs).
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0,
                 world: int = 1, drop_last: bool = False):
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, epoch
        self.rank, self.world, self.drop_last = rank, world, drop_last

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            order = np.arange(self.n)
        else:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        if self.drop_last:
            order = order[:self.n - self.n % self.world]
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return len(self._order())


def _worker_init(_: int) -> None:
    # Each worker is one process already; OpenCV's own thread pool per worker only oversubscribes.
    cv2.setNumThreads(0)


def make_loader(data: TrainingData, batch_size: int, shuffle: bool, seed: int, epoch: int,
                workers: int = 0, distributed: tuple[int, int] | None = None, *,
                drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` over ``data`` for one epoch (sets ``data``'s epoch).

    Args:
        data: the dataset; its augmentation draws depend on ``(data.seed, epoch, index)``.
        batch_size: images per batch (per rank when distributed).
        shuffle: permute the order with ``np.random.default_rng([seed, epoch])``.
        seed, epoch: the order's seed and epoch; create a new loader each epoch.
        workers: DataLoader worker processes (results do not depend on it).
        distributed: ``(rank, world)`` to load only this rank's shard (:class:`EpochSampler`).
        drop_last: training: equal shards and only full batches; evaluation (default): every
            sample exactly once, the last batch possibly short.
        pin_memory: page-locked batches for faster copies to a GPU.

    Yields batches of :func:`collate`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data.set_epoch(epoch)
    rank, world = distributed if distributed is not None else (0, 1)
    sampler = EpochSampler(len(data), shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
                           world=world, drop_last=drop_last)
    # An own generator: otherwise the DataLoader draws its workers' base seed from torch's global
    # generator, changing the training's random stream with the number of loaders made.
    generator = torch.Generator().manual_seed(int(np.random.default_rng([seed, epoch]).integers(2**62)))
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=drop_last, pin_memory=pin_memory,
                      worker_init_fn=_worker_init if workers > 0 else None, generator=generator,
                      persistent_workers=False)


def multiscale_size(base: int, step: int, rng: np.random.Generator, low: int = 320, high: int = 608,
                    stride: int = 32, every: int = 10) -> int:
    """The square input size for training batch ``step`` (the paper's multi-scale training).

    Every ``every`` batches (``step % every == 0``, including step 0) a new size is drawn
    uniformly from ``low, low + stride, ..., high`` (one ``rng`` draw); otherwise ``base``, the
    size in use, is returned and ``rng`` is untouched. Usage: ``size = multiscale_size(size,
    step, rng)``. For runs that resume at any step, pass
    ``np.random.default_rng([seed, step // every])``: the size then depends on (seed, step) only.
    """
    if stride <= 0 or low <= 0 or low % stride or high % stride or high < low:
        raise ValueError(f"need 0 < low <= high, both multiples of stride; got low={low}, "
                         f"high={high}, stride={stride}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if step % every:
        return base
    return int(rng.integers(low // stride, high // stride + 1)) * stride


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, 3, S, S)`` images to ``(B, 3, size, size)`` (bilinear, ``align_corners=False``).

    Normalised targets need no change. Returns ``images`` itself when the size already matches.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
