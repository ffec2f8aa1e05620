"""Decode image bytes: verify fetched bodies, describe and shrink them, and turn any image into RGB.

:func:`to_rgb` (and :func:`decode_rgb` on bytes) is the one place where an image of any mode becomes
the RGB pixels a model sees; every reader (datasets, the similarity embedder, the rebuild's OCR) calls
it, so a change to how transparency or high bit depths are handled is made here once. Two modes need
more than Pillow's ``convert("RGB")`` (which timm and open_clip call): 16- and 32-bit integer images
(``I;16``, ``I``) are scaled from the 16-bit range to 8 bits (Pillow clips them, so they come out
almost all white), and transparent images are composited on white, the way a browser shows them
(Pillow drops alpha, so what lies under transparent pixels, often black, would show).

Every fetched body is decoded in full with Pillow before it is kept, so a stored ``ok`` image is
known to load. The original bytes are kept (no recompression: models convert on read) unless a
resize is asked for. Only common raster formats are opened (no EPS/PSD/... plugins, which can call
out to other programs), and the pixel count is checked against a limit *before* decoding: a PNG
header can claim 100k x 100k pixels in a few hundred bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXTENSIONS",
    "OFFICIAL_MIN_PIXELS",
    "ImageInfo",
    "ImageRejectedError",
    "decode_rgb",
    "inspect_image",
    "passes_official_filter",
    "resize_image",
    "to_rgb",
]

#: Pillow's own decompression-bomb threshold (about 89.5 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485
#: The reference keeps images with width * height >= 100 (and mode RGB): SPEC section 3.
OFFICIAL_MIN_PIXELS = 100
#: Formats we open, and the file extension their bytes are stored under in shards.
EXTENSIONS = {
    "JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
}
#: Formats handed to ``Image.open`` (MPO, multi-picture JPEG, is detected by the JPEG plugin).
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: Integer modes whose samples span 16 bits; ``to_rgb`` scales them to 8 bits.
_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_WHITE = (255, 255, 255, 255)
_RESAVE = {"JPEG": ("JPEG", {"quality": 95}), "WEBP": ("WEBP", {"quality": 95}), "PNG": ("PNG", {})}


class ImageRejectedError(ValueError):
    """The bytes are not a usable image; ``status`` is the manifest status to record."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageInfo:
    """What Pillow says about stored bytes: size, original mode and format."""

    width: int
    height: int
    mode: str
    format: str

    @property
    def ext(self) -> str:
        """Extension of the shard member holding these bytes."""
        return EXTENSIONS[self.format]


def passes_official_filter(info: ImageInfo) -> bool:
    """The reference rule: keep only mode ``RGB`` with at least 100 pixels (width * height)."""
    return info.mode == "RGB" and info.width * info.height >= OFFICIAL_MIN_PIXELS


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) and check the pixel count before anything is decoded."""
    if not data:
        raise ImageRejectedError("not_image", "empty body")
    try:
        image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejectedError("bomb", f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejectedError("not_image", f"not a supported image ({data[:8]!r}...)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # broken headers
        raise ImageRejectedError("decode_error", f"unreadable image header: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejectedError("bomb", f"{width}x{height} = {width * height} pixels exceeds {max_pixels}")
    return image


def inspect_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Decode ``data`` fully and describe it; raise :class:`ImageRejectedError` with the status to record."""
    image = _open(data, max_pixels)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejectedError("bomb", f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageRejectedError("decode_error", f"{image.format} does not decode: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejectedError("decode_error", f"{image.format} has an empty size {width}x{height}")
    return ImageInfo(width=width, height=height, mode=image.mode, format=image.format or "")


def resize_image(data: bytes, info: ImageInfo, size: int) -> tuple[bytes, ImageInfo]:
    """Shrink so the shorter side is at most ``size`` (never enlarge); re-encode in the same format.

    JPEG and WebP are saved at quality 95; other formats as PNG. The mode is kept (convert on read).
    Returns the original bytes untouched when the image is already small enough.
    """
    shorter = min(info.width, info.height)
    if shorter <= size:
        return data, info
    scale = size / shorter
    new_size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    image = Image.open(io.BytesIO(data), formats=(info.format,))
    resized = image.resize(new_size, Image.Resampling.BICUBIC if image.mode not in ("P", "1") else Image.Resampling.NEAREST)
    fmt, params = _RESAVE.get(info.format, ("PNG", {}))
    buffer = io.BytesIO()
    resized.save(buffer, format=fmt, **params)
    return buffer.getvalue(), ImageInfo(width=new_size[0], height=new_size[1], mode=info.mode, format=fmt)


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in mode RGB, as a browser would show it.

    * ``I;16`` (any byte order) and ``I``: samples are read as 16-bit (what Pillow gives for 16-bit PNG
      and TIFF) and scaled to 0..255 (65535 -> 255); ``I`` values outside 0..65535 are clipped.
    * Transparency (RGBA, LA, PA, or a palette/L/RGB image with a ``transparency`` entry) is
      composited on white.
    * Every other mode converts with Pillow (CMYK, L, 1, P without transparency ...).
    """
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        image = _to_8_bit(image)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8_bit(image: Image.Image) -> Image.Image:
    """An ``L`` image of a 16/32-bit integer one: 0..65535 mapped to 0..255, rounded."""
    values = np.clip(np.asarray(image, dtype=np.int32), 0, 65535)  # * 255 still fits int32
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))


def decode_rgb(data: bytes) -> Image.Image:
    """Decode image bytes in full and return them as RGB (:func:`to_rgb`); raises what Pillow raises."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return to_rgb(image)
