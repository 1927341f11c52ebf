"""Darknet ``.weights`` files, read and written with numpy.

Layout (Darknet ``parser.c``: ``load_weights_upto`` / ``save_weights_upto``): a header of int32
major, minor, revision, then ``seen`` (images trained on) as int64 when major*10+minor >= 2 and
both are below 1000, else int32; then, for each [convolutional] layer in cfg order, float32
biases, and with batch_normalize the scales, rolling means and rolling variances, then the
weights in (out, in/groups, kh, kw) order. Other layer types store nothing. Files must be
exactly as long as the cfg implies: anything else means another cfg or class count.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DarknetWeightsError, FileError
from ..fileio import atomic_path
from .layers import ConvSpec, Network, ShortcutSpec, YoloSpec

# Per conv layer, the arrays in file order; BN layers have all five, others biases and weights.
BN_KEYS = ("biases", "scales", "rolling_mean", "rolling_variance", "weights")
PLAIN_KEYS = ("biases", "weights")


@dataclass(frozen=True)
class DarknetHeader:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_int64(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_int64 else 4)

    def to_bytes(self) -> bytes:
        head = np.array([self.major, self.minor, self.revision], dtype="<i4").tobytes()
        return head + np.array([self.seen], dtype="<i8" if self.seen_is_int64 else "<i4").tobytes()


@dataclass(frozen=True)
class ConvWeightsLayout:
    """Where one conv layer's arrays come from: layer index and array shapes."""

    layer: int
    filters: int
    weight_shape: tuple[int, int, int, int]
    batch_normalize: bool

    @property
    def keys(self) -> tuple[str, ...]:
        return BN_KEYS if self.batch_normalize else PLAIN_KEYS

    def shape(self, key: str) -> tuple[int, ...]:
        return self.weight_shape if key == "weights" else (self.filters,)

    @property
    def values(self) -> int:
        return sum(int(np.prod(self.shape(k))) for k in self.keys)


def conv_layouts(network: Network) -> list[ConvWeightsLayout]:
    """The conv layers of ``network`` in file order, with their array shapes."""
    out = []
    for s in network.shapes():
        if isinstance(s.spec, ConvSpec):
            spec = s.spec
            out.append(ConvWeightsLayout(s.index, spec.filters,
                                         (spec.filters, s.input[0] // spec.groups, spec.size, spec.size),
                                         spec.batch_normalize))
    return out


def expected_size(network: Network, header: DarknetHeader = DarknetHeader()) -> int:
    """Bytes of a .weights file for ``network`` with ``header``."""
    return header.nbytes + 4 * sum(layout.values for layout in conv_layouts(network))


def read_header(path: str | os.PathLike) -> DarknetHeader:
    """Read only the header of a .weights file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError:
        raise FileError(path, "no such weights file") from None
    except OSError as err:
        raise FileError(path, f"cannot read weights: {err.strerror}") from None
    if len(head) < 16:
        raise DarknetWeightsError(path, f"{len(head)} bytes is too short for a Darknet weights header")
    major, minor, revision = (int(v) for v in np.frombuffer(head, "<i4", 3))
    probe = DarknetHeader(major, minor, revision)
    if probe.seen_is_int64 and len(head) < 20:
        raise DarknetWeightsError(path, f"{len(head)} bytes is too short for a Darknet {major}.{minor} header")
    seen = int(np.frombuffer(head, "<i8" if probe.seen_is_int64 else "<i4", 1, offset=12)[0])
    return DarknetHeader(major, minor, revision, seen)


def read_darknet_weights(path: str | os.PathLike, network: Network, *, prefix: bool = False
                         ) -> tuple[DarknetHeader, dict[int, dict[str, np.ndarray]]]:
    """Read ``path`` for ``network``: the header and, per conv layer index, its float32 arrays.

    Raises DarknetWeightsError when the file size differs from what the cfg implies, stating the
    bytes expected and found (the usual cause: a cfg with another class count or filters).
    With ``prefix=True`` the file may instead hold exactly the first k conv layers (Darknet's
    backbone files, e.g. ``darknet53.conv.74``, written by ``darknet partial``); only those
    layers are returned.
    """
    path = Path(path)
    header = read_header(path)
    layouts = conv_layouts(network)
    expected, found = expected_size(network, header), path.stat().st_size
    if prefix and found < expected:
        ends = np.cumsum([4 * layout.values for layout in layouts]) + header.nbytes
        count = int(np.searchsorted(ends, found)) + 1
        if count <= len(layouts) and ends[count - 1] == found:
            layouts, expected = layouts[:count], found
    if found != expected:
        what = "truncated" if found < expected else "oversized"
        raise DarknetWeightsError(
            path, f"{what}: {network.source} needs {expected:,} bytes, the file has {found:,} "
                  f"({found - expected:+,}); were these weights trained with this cfg and class count?")
    data = np.fromfile(path, dtype="<f4", offset=header.nbytes)
    layers: dict[int, dict[str, np.ndarray]] = {}
    pos = 0
    for layout in layouts:
        arrays = {}
        for key in layout.keys:
            n = int(np.prod(layout.shape(key)))
            arrays[key] = data[pos:pos + n].reshape(layout.shape(key)).astype(np.float32)
            pos += n
        layers[layout.layer] = arrays
    return header, layers


def write_darknet_weights(path: str | os.PathLike, network: Network, layers: dict[int, dict[str, np.ndarray]],
                          header: DarknetHeader = DarknetHeader()) -> None:
    """Write ``layers`` (as :func:`read_darknet_weights` returns them) to ``path``, atomically."""
    chunks = [header.to_bytes()]
    for layout in conv_layouts(network):
        arrays = layers.get(layout.layer)
        if arrays is None:
            raise ValueError(f"no arrays for conv layer {layout.layer}")
        for key in layout.keys:
            array = np.asarray(arrays[key])
            if array.shape != layout.shape(key):
                raise ValueError(f"layer {layout.layer} {key}: shape {array.shape}, expected {layout.shape(key)}")
            chunks.append(array.astype("<f4").tobytes())
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)


def random_darknet_weights(network: Network, seed: int = 0, *, head_gain: float = 1.0,
                           objectness_bias: float = 0.0) -> dict[int, dict[str, np.ndarray]]:
    """Random but well-scaled arrays for ``network`` (He-normal weights, plausible BN statistics).

    Used by tests and benchmarks to make real-format weights files without downloading any:
    activations stay in a sane range through 100+ layers, so numeric comparisons mean something.
    ``head_gain`` scales the weights of each conv that feeds a [yolo] layer and
    ``objectness_bias`` is added to its objectness biases: ``head_gain=0.1,
    objectness_bias=-6`` gives heads that behave like a trained detector's (moderate logits, few
    boxes above a 0.5 score) instead of thousands of saturated, tied scores.
    """
    rng = np.random.default_rng(seed)
    layers = {}
    for layout in conv_layouts(network):
        n, fan_in = layout.filters, int(np.prod(layout.weight_shape[1:]))
        # A conv whose output is added by a [shortcut] starts small (as ResNets zero-init the last
        # BN scale of a block): 23 residual additions would otherwise grow activations ~1e5x.
        after = network.layers[min(layout.layer + 1, len(network.layers) - 1)]
        gain = 0.2 if isinstance(after, ShortcutSpec) else head_gain if isinstance(after, YoloSpec) else 1.0
        arrays = {"weights": rng.normal(0, gain * np.sqrt(2.0 / fan_in), layout.weight_shape),
                  "biases": rng.normal(0, 0.1, n)}
        if isinstance(after, YoloSpec):
            arrays["biases"][4::after.classes + 5] += objectness_bias
        if layout.batch_normalize:
            arrays.update(scales=rng.uniform(0.5, 1.5, n), rolling_mean=rng.normal(0, 0.1, n),
                          rolling_variance=rng.uniform(0.5, 1.5, n))
        layers[layout.layer] = {k: v.astype(np.float32) for k, v in arrays.items()}
    return layers
