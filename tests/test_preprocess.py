"""Tests for yolov3_trt.preprocess against literal ports of Darknet's image.c."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3_trt.errors import ImageReadError, YoloV3TrtError
from yolov3_trt.preprocess import ImageTransform, letterbox, letterbox_size, preprocess, read_image, resize, to_rgb

DARKNET = Path(__file__).resolve().parents[2] / "shared" / "darknet"
DOG = DARKNET / "images" / "dog.jpg"

f32 = np.float32


def darknet_resize_image(im: np.ndarray, w: int, h: int, snap_last_row: bool = True) -> np.ndarray:
    """Literal port of Darknet's ``resize_image`` (image.c) on a CHW float32 image, C float math.

    ``snap_last_row`` is the one deliberate change: the last output row samples the last input
    row, as Darknet does for the last column. With ``False`` this is Darknet byte for byte,
    including its float-rounding accident on the last row.
    """
    c_, im_h, im_w = im.shape
    resized = np.zeros((c_, h, w), f32)
    part = np.zeros((c_, im_h, w), f32)
    w_scale = f32(im_w - 1) / f32(w - 1) if w > 1 else f32(np.inf)
    h_scale = f32(im_h - 1) / f32(h - 1) if h > 1 else f32(np.inf)
    for k in range(c_):
        for r in range(im_h):
            for c in range(w):
                if c == w - 1 or im_w == 1:
                    val = im[k, r, im_w - 1]
                else:
                    sx = f32(c) * w_scale
                    ix = int(sx)
                    dx = f32(sx - f32(ix))
                    val = f32((f32(1) - dx) * im[k, r, ix]) + f32(dx * im[k, r, ix + 1])
                part[k, r, c] = val
    for k in range(c_):
        for r in range(h):
            if snap_last_row and (r == h - 1 or im_h == 1):
                iy, dy = im_h - 1, f32(0)
            else:
                sy = f32(r) * h_scale
                iy = int(sy)
                dy = f32(sy - f32(iy))
            for c in range(w):
                resized[k, r, c] = f32((f32(1) - dy) * part[k, iy, c])
            if r == h - 1 or im_h == 1:
                continue
            for c in range(w):
                resized[k, r, c] += f32(dy * part[k, iy + 1, c])
    return resized


def darknet_letterbox_geometry(im_w: int, im_h: int, w: int, h: int) -> tuple[int, int, int, int]:
    """Darknet's ``letterbox_image`` arithmetic: ``(new_w, new_h, dx, dy)``."""
    if f32(w) / f32(im_w) < f32(h) / f32(im_h):
        new_w, new_h = w, (im_h * w) // im_w
    else:
        new_h, new_w = h, (im_w * h) // im_h
    return new_w, new_h, (w - new_w) // 2, (h - new_h) // 2


def random_rgb(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize("src, dst", [((37, 23), (50, 19)), ((20, 31), (20, 31)), ((64, 48), (32, 24)),
                                      ((9, 7), (41, 30)), ((1, 5), (4, 3)), ((6, 1), (3, 4)),
                                      ((5, 4), (1, 1)), ((13, 2), (7, 42))])
def test_resize_matches_darknet_resize_image(src: tuple[int, int], dst: tuple[int, int]) -> None:
    rgb = random_rgb(np.random.default_rng(sum(src) + sum(dst)), *src)
    out, transform = resize(rgb, dst)
    chw = (rgb.astype(np.float64) / 255.0).astype(f32).transpose(2, 0, 1)
    expected = darknet_resize_image(chw, *dst).transpose(1, 2, 0)
    assert out.shape == (dst[1], dst[0], 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    assert transform == ImageTransform(src[0], src[1], dst[0] / src[0], dst[1] / src[1], 0.0, 0.0)


def test_darknet_last_row_rounding_accident_is_not_reproduced() -> None:
    # 2 -> 42 rows: (42-1) * float32(1/41) rounds below 1, so Darknet's last row is ~0.
    chw = np.ones((1, 2, 3), f32)
    darknet = darknet_resize_image(chw, 3, 42, snap_last_row=False)
    assert darknet[0, -1].max() < 1e-6
    out, _ = resize(np.full((2, 3, 3), 255, np.uint8), (3, 42))
    assert np.all(out == 1.0)


def test_unit_conversion_is_darknet_byte_over_255() -> None:
    rgb = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out, _ = resize(rgb, (16, 16))
    np.testing.assert_array_equal(out[..., 0].ravel(), (np.arange(256) / 255.0).astype(f32))


# ---------------------------------------------------------------- letterbox


@pytest.mark.parametrize("src, net", [((768, 576), (416, 416)),  # landscape (dog.jpg)
                                      ((375, 500), (416, 416)),  # portrait
                                      ((300, 300), (416, 416)),  # square
                                      ((333, 517), (320, 256)),  # odd sizes, non-square net
                                      ((641, 479), (608, 608)),
                                      ((1000, 3), (32, 64))])    # degenerate height
def test_letterbox_geometry_matches_darknet(src: tuple[int, int], net: tuple[int, int]) -> None:
    new_w, new_h, dx, dy = darknet_letterbox_geometry(*src, *net)
    if new_w == 0 or new_h == 0:  # Darknet fails here; we keep one pixel
        new_w, new_h = max(new_w, 1), max(new_h, 1)
        dx, dy = (net[0] - new_w) // 2, (net[1] - new_h) // 2
    assert letterbox_size(src, net) == (new_w, new_h)
    rgb = np.full((src[1], src[0], 3), 200, np.uint8)
    out, transform = letterbox(rgb, net)
    assert out.shape == (net[1], net[0], 3) and out.dtype == np.float32
    assert (transform.pad_x, transform.pad_y) == (dx, dy)
    assert transform.scale_x == pytest.approx(new_w / src[0]) and transform.scale_y == pytest.approx(new_h / src[1])
    assert (transform.src_width, transform.src_height) == src
    inside = np.zeros(out.shape[:2], bool)
    inside[dy:dy + new_h, dx:dx + new_w] = True
    np.testing.assert_allclose(out[inside], 200 / 255.0, rtol=0, atol=1e-6)  # (1-d)*v + d*v: 1 ulp
    assert np.all(out[~inside] == 0.5)


@pytest.mark.parametrize("src, net", [((37, 23), (32, 32)), ((19, 40), (64, 32)), ((30, 30), (32, 64))])
def test_letterbox_pixels_match_darknet(src: tuple[int, int], net: tuple[int, int]) -> None:
    rgb = random_rgb(np.random.default_rng(7), *src)
    out, _ = letterbox(rgb, net)
    new_w, new_h, dx, dy = darknet_letterbox_geometry(*src, *net)
    chw = (rgb.astype(np.float64) / 255.0).astype(f32).transpose(2, 0, 1)
    expected = np.full((net[1], net[0], 3), 0.5, f32)
    expected[dy:dy + new_h, dx:dx + new_w] = darknet_resize_image(chw, new_w, new_h).transpose(1, 2, 0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("src, net", [((640, 480), (416, 416)), ((480, 640), (416, 320)), ((517, 333), (608, 608))])
def test_box_round_trip_within_one_pixel(src: tuple[int, int], net: tuple[int, int]) -> None:
    box = np.array([[101.0, 57.0, 313.0, 290.0]])
    rgb = np.zeros((src[1], src[0], 3), np.uint8)
    x1, y1, x2, y2 = box[0].astype(int)
    rgb[y1:y2, x1:x2] = 255  # pixels [x1, x2) cover continuous [x1, x2]
    out, transform = letterbox(rgb, net)
    ys, xs = np.nonzero(out[..., 0] > 0.5)  # bright region in the network input
    net_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
    np.testing.assert_allclose(transform.to_net(box), net_box, atol=1.0)
    np.testing.assert_allclose(transform.to_image(net_box), box, atol=1.0)


def test_transform_inverse_and_clip() -> None:
    t = ImageTransform(src_width=640, src_height=480, scale_x=0.65, scale_y=0.65, pad_x=0.0, pad_y=52.0)
    boxes = np.array([[10.0, 20.0, 300.5, 400.25], [0.0, 0.0, 640.0, 480.0]])
    back = t.to_image(t.to_net(boxes))
    assert back.dtype == np.float32 and back.shape == (2, 4)
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    outside = t.to_image(np.array([[-50.0, 0.0, 500.0, 416.0]]))  # beyond the image on every side
    np.testing.assert_array_equal(outside, [[0.0, 0.0, 640.0, 480.0]])
    assert t.to_image(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        t.to_image(np.zeros((3, 5)))


# ---------------------------------------------------------------- to_rgb


def test_to_rgb_layouts() -> None:
    rng = np.random.default_rng(1)
    bgr = random_rgb(rng, 5, 4)
    rgb = to_rgb(bgr)
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])
    assert rgb.flags.c_contiguous and rgb.dtype == np.uint8
    np.testing.assert_array_equal(to_rgb(bgr, "rgb"), bgr)
    gray = bgr[:, :, 0]
    for image in (gray, gray[:, :, None]):
        np.testing.assert_array_equal(to_rgb(image), np.stack([gray] * 3, axis=2))
    alpha = rng.integers(0, 256, (4, 5, 1), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(np.concatenate([bgr, alpha], axis=2)), bgr[:, :, ::-1])
    np.testing.assert_array_equal(to_rgb(np.concatenate([bgr, alpha], axis=2), "rgb"), bgr)
    np.testing.assert_array_equal(to_rgb(bgr.astype(np.uint16) * 257), bgr[:, :, ::-1])


@pytest.mark.parametrize("image, message", [
    (None, "None"),
    ([[1, 2], [3, 4]], "numpy array"),
    (np.zeros((4, 5, 3), np.float32), "uint8"),
    (np.zeros((4, 5, 2), np.uint8), "shape"),
    (np.zeros((2, 4, 5, 3), np.uint8), "shape"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
])
def test_to_rgb_rejects(image: object, message: str) -> None:
    with pytest.raises(YoloV3TrtError, match=message) as info:
        to_rgb(image)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_letterbox_rejects_non_rgb_uint8() -> None:
    with pytest.raises(YoloV3TrtError, match="uint8"):
        letterbox(np.zeros((4, 4, 3), np.float32), (32, 32))
    with pytest.raises(ValueError, match="size"):
        letterbox(np.zeros((4, 4, 3), np.uint8), (32, 0))


# ---------------------------------------------------------------- preprocess


def test_preprocess_batch() -> None:
    rng = np.random.default_rng(3)
    images = [random_rgb(rng, 40, 30), random_rgb(rng, 25, 50)[:, :, 0]]
    blob, transforms = preprocess(images, (64, 32))
    assert blob.shape == (2, 3, 32, 64) and blob.dtype == np.float32 and blob.flags.c_contiguous
    expected0, t0 = letterbox(images[0][:, :, ::-1].copy(), (64, 32))  # BGR in -> RGB planes out
    np.testing.assert_array_equal(blob[0], expected0.transpose(2, 0, 1))
    assert transforms[0] == t0 and transforms[1].src_width == 25
    blob_rgb, _ = preprocess(images[:1], (64, 32), channel_order="rgb")
    np.testing.assert_array_equal(blob_rgb[0], blob[0][::-1])
    stretched, ts = preprocess(images[:1], (64, 32), mode="resize")
    np.testing.assert_array_equal(stretched[0], resize(images[0][:, :, ::-1].copy(), (64, 32))[0].transpose(2, 0, 1))
    assert ts[0].pad_x == ts[0].pad_y == 0.0
    assert preprocess([], (64, 32))[0].shape == (0, 3, 32, 64)
    with pytest.raises(ValueError, match="mode"):
        preprocess(images, (64, 32), mode="crop")  # type: ignore[arg-type]


# ---------------------------------------------------------------- read_image


@pytest.mark.skipif(not DOG.is_file(), reason=f"{DOG} not found")
def test_read_image_dog() -> None:
    image = read_image(DOG)
    assert image.shape == (576, 768, 3) and image.dtype == np.uint8
    blob, (transform,) = preprocess([image], (416, 416))
    assert blob.shape == (1, 3, 416, 416)
    assert (transform.pad_x, transform.pad_y) == (0.0, 52.0)


def test_read_image_gray_and_rgba_png(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.stack([gray] * 3, axis=2))
    bgra = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_array_equal(read_image(str(tmp_path / "rgba.png")), bgra[:, :, :3])


def test_read_image_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(ImageReadError, match="no such file") as info:
        read_image(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg\x00\x01" * 10)
    with pytest.raises(ImageReadError, match="not a decodable image") as info:
        read_image(garbage)
    assert str(garbage) in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="not a decodable image"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


# ---------------------------------------------------------------- bit-exactness of the fast path


def reference_resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """The straightforward numpy ``resize_image`` (HWC, float32) that preprocess replaced; it
    matches darknet_resize_image above and is the reference for bit-identity here."""
    def samples(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if src == 1 or dst == 1:
            last = np.full(dst, src - 1, dtype=np.intp)
            return last, last, np.zeros(dst, f32)
        pos = np.arange(dst, dtype=f32) * (f32(src - 1) / f32(dst - 1))
        i0 = pos.astype(np.intp)
        frac = pos - i0.astype(f32)
        i0[-1], frac[-1] = src - 1, f32(0)
        return i0, np.minimum(i0 + 1, src - 1), frac

    unit = rgb.astype(f32) / f32(255)
    y0, y1, fy = samples(rgb.shape[0], height)
    x0, x1, fx = samples(rgb.shape[1], width)
    fx = fx[None, :, None]
    part = unit[:, x0] * (f32(1) - fx) + unit[:, x1] * fx
    fy = fy[:, None, None]
    return part[y0] * (f32(1) - fy) + part[y1] * fy


def reference_letterbox(rgb: np.ndarray, net: tuple[int, int]) -> np.ndarray:
    new_w, new_h = letterbox_size((rgb.shape[1], rgb.shape[0]), net)
    dx, dy = (net[0] - new_w) // 2, (net[1] - new_h) // 2
    out = np.full((net[1], net[0], 3), 0.5, f32)
    out[dy:dy + new_h, dx:dx + new_w] = reference_resize(rgb, new_w, new_h)
    return out


def reference_blob(images: list[np.ndarray], net: tuple[int, int], mode: str = "letterbox") -> np.ndarray:
    """What preprocess returned before: to_rgb, HWC resize, then transpose into the blob."""
    prepare = reference_letterbox if mode == "letterbox" else (lambda rgb, size: reference_resize(rgb, *size))
    return np.stack([prepare(to_rgb(image), net).transpose(2, 0, 1) for image in images])


def test_reference_resize_is_darknet() -> None:
    rgb = random_rgb(np.random.default_rng(9), 23, 17)
    chw = (rgb.astype(np.float64) / 255.0).astype(f32).transpose(2, 0, 1)
    for size in ((40, 31), (11, 8), (1, 5), (23, 17)):
        np.testing.assert_allclose(reference_resize(rgb, *size), darknet_resize_image(chw, *size).transpose(1, 2, 0),
                                   rtol=0, atol=1e-6)


def test_byte_table_is_the_float32_division() -> None:
    from yolov3_trt.darknet_resize import _UNIT_TABLE

    byte = np.arange(256, dtype=np.uint8)
    looked_up = cv2.LUT(byte.reshape(16, 16), _UNIT_TABLE).ravel()
    assert looked_up.dtype == np.float32
    np.testing.assert_array_equal(looked_up, byte.astype(f32) / f32(255))
    np.testing.assert_array_equal(looked_up, (byte / 255.0).astype(f32))  # Darknet's double quotient


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_fast_path_is_bit_identical_on_random_sizes(mode: str) -> None:
    rng = np.random.default_rng(42 if mode == "letterbox" else 43)
    sizes = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 500), (500, 3)] + [tuple(rng.integers(1, 260, 2)) for _ in range(40)]
    for src_w, src_h in sizes:
        net = tuple(int(v) for v in rng.integers(1, 200, 2))
        image = random_rgb(rng, int(src_w), int(src_h))
        blob, _ = preprocess([image], net, mode=mode)
        assert np.array_equal(blob, reference_blob([image], net, mode)), ((src_w, src_h), net)


@pytest.mark.parametrize("src, net", [((768, 576), (416, 416)), ((1920, 1080), (608, 608)),
                                      ((1920, 1080), (416, 416)), ((640, 480), (416, 416)),
                                      ((480, 640), (608, 608)), ((300, 200), (416, 416)),  # upscale
                                      ((416, 416), (416, 416)), ((1280, 720), (320, 256))])
def test_fast_path_is_bit_identical_on_camera_sizes(src: tuple[int, int], net: tuple[int, int]) -> None:
    image = random_rgb(np.random.default_rng(src[0] + net[0]), *src)
    for mode in ("letterbox", "resize"):
        assert np.array_equal(preprocess([image], net, mode=mode)[0], reference_blob([image], net, mode))
    rgb = image[:, :, ::-1].copy()
    assert np.array_equal(letterbox(rgb, net)[0], reference_letterbox(rgb, net))
    assert np.array_equal(resize(rgb, net)[0], reference_resize(rgb, *net))


@pytest.mark.skipif(not DOG.is_file(), reason=f"{DOG} not found")
def test_fast_path_is_bit_identical_on_dog() -> None:
    image = read_image(DOG)
    for net in ((416, 416), (608, 608), (320, 320)):
        assert np.array_equal(preprocess([image], net)[0], reference_blob([image], net))
    # Same geometry again: the cached index and weight arrays are reused, not modified.
    assert np.array_equal(preprocess([image, image], (416, 416))[0], reference_blob([image, image], (416, 416)))


def test_fast_path_is_bit_identical_for_every_layout() -> None:
    rng = np.random.default_rng(17)
    bgr = random_rgb(rng, 57, 41)
    alpha = rng.integers(0, 256, (41, 57, 1), dtype=np.uint8)
    images = [bgr, bgr[:, :, 0], bgr[:, :, :1], np.concatenate([bgr, alpha], axis=2),
              bgr.astype(np.uint16) * 257 + 3, bgr[::2, ::-1], np.asfortranarray(bgr)]
    for order in ("bgr", "rgb"):
        blob, transforms = preprocess(images, (64, 48), channel_order=order)
        expected = np.stack([reference_letterbox(to_rgb(im, order), (64, 48)).transpose(2, 0, 1) for im in images])
        assert np.array_equal(blob, expected)
        assert [t.src_width for t in transforms] == [im.shape[1] for im in images]


def test_gather_fallback_beyond_remap_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # cv2.remap takes images and maps below 32767 pixels a side; beyond, a numpy gather is used.
    wide = random_rgb(np.random.default_rng(5), 33000, 3)
    assert np.array_equal(preprocess([wide], (64, 32))[0], reference_blob([wide], (64, 32)))
    import yolov3_trt.darknet_resize as module

    monkeypatch.setattr(module, "_SHRT_MAX", 16)  # force the fallback on ordinary sizes
    rng = np.random.default_rng(6)
    for image in (random_rgb(rng, 50, 37), random_rgb(rng, 37, 50)[:, :, 0]):
        for mode in ("letterbox", "resize"):
            assert np.array_equal(preprocess([image], (40, 24), mode=mode)[0],
                                  reference_blob([image], (40, 24), mode))


def test_cached_geometry_is_read_only() -> None:
    from yolov3_trt.darknet_resize import _remap_maps, _resize_plan

    preprocess([random_rgb(np.random.default_rng(1), 30, 20)], (32, 32))
    plan = _resize_plan(30, 20, 32, 21)
    assert plan.block >= 1
    for array in (plan.rows, plan.x0, plan.x1, plan.wx0, plan.wx1, plan.wy0, plan.wy1, *_remap_maps(30, 20, 32, 21)):
        assert not array.flags.writeable


def test_any_block_size_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # Output rows are computed a cache-sized block at a time; one row per block changes nothing.
    import yolov3_trt.darknet_resize as module

    image = random_rgb(np.random.default_rng(12), 71, 53)
    expected = reference_blob([image], (48, 40))
    monkeypatch.setattr(module, "_BLOCK_BYTES", 1)
    module._resize_plan.cache_clear()
    module._remap_maps.cache_clear()
    try:
        assert module._resize_plan(71, 53, 48, 35).block == 1
        assert np.array_equal(preprocess([image], (48, 40))[0], expected)
    finally:
        module._resize_plan.cache_clear()
        module._remap_maps.cache_clear()


# ---------------------------------------------------------------- kernel="opencv"

PHOTOS = sorted((DARKNET / "images").glob("*.jpg"))


def opencv_reference(rgb: np.ndarray, net: tuple[int, int], mode: str = "letterbox") -> np.ndarray:
    """What kernel="opencv" promises, written the slow way: Darknet's geometry and 0.5 border around
    cv2.resize(INTER_LINEAR) of the uint8 RGB image, divided by 255, as a CHW float32 array."""
    if mode == "letterbox":
        new_w, new_h, _, _ = darknet_letterbox_geometry(rgb.shape[1], rgb.shape[0], *net)
        new_w, new_h = max(new_w, 1), max(new_h, 1)  # an extreme aspect ratio keeps one pixel
        dx, dy = (net[0] - new_w) // 2, (net[1] - new_h) // 2
    else:
        (new_w, new_h), dx, dy = net, 0, 0
    out = np.full((net[1], net[0], 3), 0.5, f32)
    out[dy:dy + new_h, dx:dx + new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR) / f32(255)
    return out.transpose(2, 0, 1)


@pytest.mark.parametrize("mode", ["letterbox", "resize"])
def test_opencv_kernel_is_cv2_resize_in_darknets_geometry(mode: str) -> None:
    rng = np.random.default_rng(21)
    sizes = [(768, 576), (576, 768), (1, 1), (1, 9), (9, 1), (3, 500), (500, 3), (416, 416), (300, 200)]
    sizes += [tuple(int(v) for v in rng.integers(1, 300, 2)) for _ in range(20)]
    for src_w, src_h in sizes:
        net = (416, 416) if src_w > 100 and src_h > 100 else tuple(int(v) for v in rng.integers(1, 120, 2))
        image = random_rgb(rng, src_w, src_h)
        blob, transforms = preprocess([image], net, mode=mode, kernel="opencv")
        exact, exact_transforms = preprocess([image], net, mode=mode)
        assert blob.shape == exact.shape and blob.dtype == np.float32 and blob.flags.c_contiguous
        assert transforms == exact_transforms  # same scale and pads: boxes map back the same way
        assert np.array_equal(blob[0], opencv_reference(image[:, :, ::-1].copy(), net, mode)), ((src_w, src_h), net)
        assert 0.0 <= blob.min() and blob.max() <= 1.0


def test_opencv_kernel_border_is_exactly_grey() -> None:
    image = random_rgb(np.random.default_rng(2), 300, 500)  # tall: pads left and right
    for net in ((416, 416), (608, 320)):
        blob, (t,) = preprocess([image], net, kernel="opencv")
        x0, y0 = int(t.pad_x), int(t.pad_y)
        x1, y1 = x0 + round(t.scale_x * 300), y0 + round(t.scale_y * 500)
        assert x0 > 0 or y0 > 0
        border = np.ones(blob.shape[2:], bool)
        border[y0:y1, x0:x1] = False
        assert (blob[0][:, border] == f32(0.5)).all()
        assert not (blob[0][:, ~border] == f32(0.5)).all()


def test_opencv_kernel_every_layout() -> None:
    rng = np.random.default_rng(18)
    bgr = random_rgb(rng, 57, 41)
    alpha = rng.integers(0, 256, (41, 57, 1), dtype=np.uint8)
    images = [bgr, bgr[:, :, 0], bgr[:, :, :1], np.concatenate([bgr, alpha], axis=2),
              bgr.astype(np.uint16) * 257 + 3, bgr[::2, ::-1], np.asfortranarray(bgr)]
    for order in ("bgr", "rgb"):
        blob, transforms = preprocess(images, (64, 48), channel_order=order, kernel="opencv")
        expected = np.stack([opencv_reference(to_rgb(im, order), (64, 48)) for im in images])
        assert np.array_equal(blob, expected)
        assert transforms == preprocess(images, (64, 48), channel_order=order)[1]
    grey = preprocess([bgr[:, :, 0]], (64, 48), kernel="opencv")[0][0]
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[0], grey[2])


def test_opencv_kernel_in_the_interleaved_helpers() -> None:
    rgb = random_rgb(np.random.default_rng(4), 90, 60)
    for helper, mode in ((letterbox, "letterbox"), (resize, "resize")):
        out, transform = helper(rgb, (64, 64), kernel="opencv")
        blob, (expected,) = preprocess([rgb], (64, 64), mode=mode, channel_order="rgb", kernel="opencv")
        assert np.array_equal(out, blob[0].transpose(1, 2, 0)) and transform == expected
        assert np.array_equal(helper(rgb, (64, 64), kernel="darknet")[0], helper(rgb, (64, 64))[0])


def test_an_unknown_kernel_is_refused_by_name() -> None:
    image = random_rgb(np.random.default_rng(0), 8, 8)
    with pytest.raises(ValueError, match=r"^kernel must be one of darknet, opencv, got 'cubic'$"):
        preprocess([image], (32, 32), kernel="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 'nearest'"):
        letterbox(image, (32, 32), kernel="nearest")  # type: ignore[arg-type]


# Measured (abs difference over the image part, kernel "opencv" vs "darknet", Darknet's six photos
# at 416): mean 0.0062-0.0122, 99th percentile 0.040-0.113, max 0.09-0.67 (the max on kite.jpg,
# 1352x900: sharp edges, where the two kernels' sample positions, up to half a source pixel apart,
# fall on either side). A smooth gradient differs by rounding only: at most 1/255 (measured 1/255).
OPENCV_MEAN, OPENCV_P99, OPENCV_MAX, OPENCV_SMOOTH_MAX = 0.015, 0.13, 0.7, 2 / 255


@pytest.mark.skipif(len(PHOTOS) < 6, reason=f"Darknet's photos not found in {DARKNET / 'images'}")
def test_opencv_kernel_is_close_to_darknets_on_photos() -> None:
    for path in PHOTOS:
        image = read_image(path)
        (fast,), (t,) = preprocess([image], (416, 416), kernel="opencv")
        exact = preprocess([image], (416, 416))[0][0]
        y0, x0 = int(t.pad_y), int(t.pad_x)
        part = np.abs(fast - exact)[:, y0:416 - y0, x0:416 - x0]
        assert part.mean() <= OPENCV_MEAN and np.percentile(part, 99) <= OPENCV_P99, path.name
        assert part.max() <= OPENCV_MAX, path.name


def test_opencv_kernel_is_close_to_darknets_on_a_smooth_image() -> None:
    y, x = np.mgrid[0:576, 0:768]
    image = np.stack([x * 255 // 767, y * 255 // 575, (x + 2 * y) * 255 // (767 + 2 * 575)], -1).astype(np.uint8)
    for net in ((416, 416), (320, 320), (608, 608)):
        difference = np.abs(preprocess([image], net, kernel="opencv")[0] - preprocess([image], net)[0])
        assert difference.max() <= OPENCV_SMOOTH_MAX, net
