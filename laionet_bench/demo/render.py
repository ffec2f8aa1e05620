"""Turn one pool item into an RGB PNG, the same way every time.

Rasters keep their size up to ``MAX_SIDE`` (bigger ones are shrunk); SVGs are rendered by
``rsvg-convert`` to fit ``SVG_SIDE`` (one OpenClipArt PNG export is 168 Mpx, so the SVGs are rendered
instead); emoji are drawn from Noto Color Emoji's bitmap strike (Pillow can only draw it at size 109).
Transparency is composited on white, the way a web page shows a cut-out. Workers of a process pool call
:func:`render_to_file`; everything they need travels in a picklable :class:`RenderTask`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .._io import atomic_write
from ..errors import DatasetError

__all__ = ["EMOJI_FONT_SIZE", "MAX_SIDE", "SVG_SIDE", "RenderTask", "RenderedImage", "render_to_file"]

SVG_SIDE = 256
MAX_SIDE = 512
EMOJI_FONT_SIZE = 109  # the only size of Noto Color Emoji's CBDT strike
_EMOJI_CANVAS = (136, 128)
_SVG_TIMEOUT_S = 60
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class RenderTask:
    """What a worker needs: the render kind, the input (file or bytes) and the output file."""

    row_id: int
    render: str  # "raster" | "svg" | "emoji"
    out: Path
    file: Path | None = None  # input on disk, or
    data: bytes | None = None  # input bytes (GCompris resources), or
    code_point: int | None = None  # emoji
    font: Path | None = None


@dataclass(frozen=True)
class RenderedImage:
    row_id: int
    width: int
    height: int
    sha256: str
    error: str | None = None


def render_to_file(task: RenderTask) -> RenderedImage:
    """Render ``task`` to an RGB PNG at ``task.out`` (atomically); a broken input gives ``error``."""
    try:
        image = _render(task)
    except (OSError, ValueError, DatasetError, subprocess.SubprocessError, Image.DecompressionBombError) as exc:
        return RenderedImage(task.row_id, 0, 0, "", error=f"{type(exc).__name__}: {exc}"[:300])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    payload = buffer.getvalue()
    with atomic_write(task.out) as handle:
        handle.write(payload)
    return RenderedImage(task.row_id, image.width, image.height, hashlib.sha256(payload).hexdigest())


def _render(task: RenderTask) -> Image.Image:
    if task.render == "emoji":
        return _render_emoji(task.code_point, task.font)
    if task.data is not None:
        data = task.data
    elif task.file is not None:
        data = task.file.read_bytes()
    else:
        raise ValueError(f"render task for row {task.row_id} has neither a file nor bytes")
    if task.render == "svg":
        return _on_white(Image.open(io.BytesIO(_rsvg(data))))
    if task.render == "raster":
        with Image.open(io.BytesIO(data)) as source:
            source.seek(0)  # first frame of an animation
            image = _on_white(source)
        if max(image.size) > MAX_SIDE:
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        return image
    raise ValueError(f"unknown render kind {task.render!r}")


def _rsvg(svg: bytes) -> bytes:
    """PNG bytes of an SVG (or gzipped SVGZ) fitted into SVG_SIDE×SVG_SIDE, read from stdin."""
    result = subprocess.run(
        ["rsvg-convert", "--width", str(SVG_SIDE), "--height", str(SVG_SIDE), "--keep-aspect-ratio"],
        input=svg, capture_output=True, timeout=_SVG_TIMEOUT_S, check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise ValueError(f"rsvg-convert failed: {result.stderr.decode(errors='replace').strip()[:200]}")
    return result.stdout


def _on_white(image: Image.Image) -> Image.Image:
    """RGB copy of ``image`` with any transparency composited on white."""
    image.load()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I", "F"):
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


@functools.lru_cache(maxsize=2)
def _emoji_font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), EMOJI_FONT_SIZE)


def _render_emoji(code_point: int | None, font_path: Path | None) -> Image.Image:
    if code_point is None or font_path is None:
        raise ValueError("an emoji task needs a code point and a font")
    font = _emoji_font(font_path)
    text = chr(code_point)
    canvas = Image.new("RGBA", _EMOJI_CANVAS, WHITE + (0,))
    left, top, right, bottom = ImageDraw.Draw(canvas).textbbox((0, 0), text, font=font, embedded_color=True)
    origin = ((_EMOJI_CANVAS[0] - (right - left)) // 2 - left, (_EMOJI_CANVAS[1] - (bottom - top)) // 2 - top)
    ImageDraw.Draw(canvas).text(origin, text, font=font, embedded_color=True)
    if canvas.getchannel("A").getbbox() is None:
        raise ValueError(f"U+{code_point:04X} draws nothing in {font_path.name}")
    return _on_white(canvas)
