"""The one RGB decoder: high bit depths are scaled, not clipped; transparency is composited on white."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from laionet_bench.images.decode import decode_rgb, to_rgb

from .fakes.images import image_bytes

WHITE = (255, 255, 255)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _expected_8_bit(values: np.ndarray) -> np.ndarray:
    return np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)


def test_16_bit_png_is_scaled_not_clipped_to_white():
    data = image_bytes("I;16", "PNG", (32, 24))  # values 0 .. 28379 of 65535
    source = np.asarray(Image.open(io.BytesIO(data)))
    rgb = decode_rgb(data)
    pixels = np.asarray(rgb)
    assert rgb.mode == "RGB" and rgb.size == (32, 24)
    assert (pixels == 255).mean() < 0.01  # Pillow's plain convert("RGB") makes 99% of this white
    assert np.array_equal(pixels[..., 0], _expected_8_bit(source))
    assert np.array_equal(pixels[..., 0], pixels[..., 2])


@pytest.mark.parametrize("dtype", ["int32", ">u2", "<u2"])
def test_32_bit_and_big_endian_integer_images_use_the_16_bit_range(dtype):
    values = np.array([[0, 257, 32768, 65535], [128, 1000, 40000, 65534]])
    image = Image.fromarray(values.astype(dtype))
    assert image.mode in ("I", "I;16B", "I;16")
    pixels = np.asarray(to_rgb(image))
    assert np.array_equal(pixels[..., 1], _expected_8_bit(values))
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]


def test_32_bit_values_outside_16_bits_are_clipped():
    image = Image.fromarray(np.array([[-5, 70000]], dtype="int32"))
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 255]


def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (3, 1), (0, 0, 0, 0))  # fully transparent black: shows as white
    rgba.putpixel((1, 0), (255, 0, 0, 255))  # opaque red stays red
    rgba.putpixel((2, 0), (0, 0, 255, 128))  # half-transparent blue over white
    rgb = decode_rgb(_png(rgba))
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [WHITE, (255, 0, 0), (127, 127, 255)]


def test_la_is_composited_on_white():
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (40, 255))
    rgb = decode_rgb(_png(la))
    assert [rgb.getpixel((x, 0)) for x in range(2)] == [WHITE, (40, 40, 40)]


def test_palette_transparency_is_composited_on_white():
    data = image_bytes("P", "PNG", (32, 24))  # palette entry 0 is transparent
    palette = Image.open(io.BytesIO(data))
    indices = np.asarray(palette)
    assert (indices == 0).any() and (indices != 0).any()
    pixels = np.asarray(decode_rgb(data))
    assert (pixels[indices == 0] == 255).all()
    opaque = np.asarray(palette.convert("RGB"))[indices != 0]
    assert np.array_equal(pixels[indices != 0], opaque)


def test_grey_with_a_transparent_value_is_composited_on_white():
    grey = Image.new("L", (2, 1), 7)
    grey.putpixel((1, 0), 90)
    grey.info["transparency"] = 7
    assert [to_rgb(grey).getpixel((x, 0)) for x in range(2)] == [WHITE, (90, 90, 90)]


def test_plain_modes_convert_as_pillow_does():
    rgb = Image.new("RGB", (2, 2), (10, 20, 30))
    assert to_rgb(rgb) is rgb
    cmyk = Image.open(io.BytesIO(image_bytes("CMYK", "JPEG")))
    assert np.array_equal(np.asarray(to_rgb(cmyk)), np.asarray(cmyk.convert("RGB")))
    grey = Image.open(io.BytesIO(image_bytes("L", "PNG")))
    assert np.array_equal(np.asarray(to_rgb(grey)), np.asarray(grey.convert("RGB")))
