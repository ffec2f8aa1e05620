"""The installed packages the demo pool is made from, and the captions each one carries.

Each source lists EVERY image of its package with the caption a web crawler would have seen beside it
(the LAION situation): Tux Paint's stamp description, an OpenClipArt title and keywords, a GCompris file
name, an emoji's Unicode name, a sample photo's file name. Nothing is filtered by class here: selecting
by caption is the rebuild pipeline's job. Listing is cheap (no decoding); rendering is ``render.py``'s.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError, MissingSystemPackageError, UnknownNameError
from ._rcc import read_rcc

__all__ = ["SOURCES", "PoolItem", "Source", "check_source", "get_source", "list_items"]

#: Filesystem root the Debian packages are looked up under (tests point it at an empty folder).
SYSTEM_ROOT = Path("/")

TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"
OPENCLIPART_SVG = "usr/share/openclipart/svg"
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
NOTO_EMOJI_FONT = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
RSVG_CONVERT = "rsvg-convert"

_GCOMPRIS_IMAGE_SUFFIXES = (".svg", ".svgz", ".webp", ".png", ".jpg", ".jpeg", ".gif")


@dataclass(frozen=True)
class PoolItem:
    """One image of the pool: where it comes from, how to render it, and its caption."""

    source: str  # name in SOURCES
    package: str  # Debian or PyPI package holding it
    path: str  # path inside the package root, resource path inside an .rcc, or "U+XXXX"
    caption: str
    license: str
    render: str  # "raster" | "svg" | "emoji"
    container: str = ""  # for GCompris: the .rcc archive (path under SYSTEM_ROOT) holding ``path``


@dataclass(frozen=True)
class Source:
    """A demo source: its packages (Debian ones are checked before listing) and its lister."""

    name: str
    debian_packages: tuple[tuple[str, str], ...]  # (package, file or directory it must provide)
    lister: Callable[[], Iterator[PoolItem]]
    needs_rsvg: bool = False


def _root(relative: str) -> Path:
    return SYSTEM_ROOT / relative


# ---- Tux Paint ----------------------------------------------------------------------------------


def _list_tuxpaint() -> Iterator[PoolItem]:
    stamps = _root(TUXPAINT_STAMPS)
    for image in sorted(p for p in stamps.rglob("*") if p.suffix in (".png", ".svg") and p.is_file()):
        yield PoolItem(
            source="tuxpaint",
            package="tuxpaint-stamps-default",
            path=str(image.relative_to(SYSTEM_ROOT)),
            caption=_tuxpaint_caption(image),
            license="GPL-2.0-or-later",
            render="svg" if image.suffix == ".svg" else "raster",
        )


def _tuxpaint_caption(image: Path) -> str:
    """Line 1 of ``<name>.txt`` (the English description); the file name when there is none."""
    text = image.with_suffix(".txt")
    if text.is_file():
        first = text.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        if first and first[0].strip():
            return first[0].strip()
    return _words_of(image.stem)


# ---- OpenClipArt ------------------------------------------------------------------------------------

_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)
_SUBJECT = re.compile(r"<dc:subject>(.*?)</dc:subject>", re.S)
_LI = re.compile(r"<rdf:li>(.*?)</rdf:li>", re.S)
_TAG = re.compile(r"<[^>]+>")


def _list_openclipart() -> Iterator[PoolItem]:
    root = _root(OPENCLIPART_SVG)
    # Symlinks in the package point at other files of it: listing them would duplicate images.
    for svg in sorted(p for p in root.rglob("*.svg") if p.is_file() and not p.is_symlink()):
        yield PoolItem(
            source="openclipart",
            package="openclipart-svg",
            path=str(svg.relative_to(SYSTEM_ROOT)),
            caption=openclipart_caption(svg.read_text(encoding="utf-8", errors="replace"), svg.stem),
            license="public-domain",
            render="svg",
        )


def openclipart_caption(svg_text: str, fallback: str) -> str:
    """``Title (keyword, keyword, ...)`` from the SVG's Dublin Core metadata, as OpenClipArt showed it."""
    title_match = _TITLE.search(svg_text)
    title = _clean(_TAG.sub(" ", title_match.group(1))) if title_match else ""
    subject = _SUBJECT.search(svg_text)
    keywords = [_clean(k) for k in _LI.findall(subject.group(1))] if subject else []
    keywords = [k for k in keywords if k]
    caption = title or _words_of(fallback)
    return f"{caption} ({', '.join(keywords)})" if keywords else caption


def _clean(text: str) -> str:
    return " ".join(html.unescape(text).split())


# ---- GCompris ---------------------------------------------------------------------------------------

_README_BLOCK = re.compile(r"^(Copyright|License|Source|Files):\s*(.*)$")


def _list_gcompris() -> Iterator[PoolItem]:
    seen: set[str] = set()
    for archive in sorted(_root(GCOMPRIS_RCC).glob("*.rcc")):
        files = read_rcc(archive)
        licenses = _gcompris_licenses(files)
        for name in sorted(files):
            if not name.lower().endswith(_GCOMPRIS_IMAGE_SUFFIXES) or name in seen:
                continue
            seen.add(name)  # a few resources are packed in several archives: keep the first
            yield PoolItem(
                source="gcompris",
                package="gcompris-qt-data",
                path=name,
                caption=_words_of(Path(name).stem),
                license=licenses.get(name, "GPL-3.0-or-later (GCompris artwork)"),
                render="svg" if name.lower().endswith((".svg", ".svgz")) else "raster",
                container=str(archive.relative_to(SYSTEM_ROOT)),
            )


def _gcompris_licenses(files: dict[str, bytes]) -> dict[str, str]:
    """Resource path → licence, from the per-folder README blocks (Copyright/License/Source/Files)."""
    licenses: dict[str, str] = {}
    for name, data in files.items():
        if Path(name).name != "README":
            continue
        folder = str(Path(name).parent)
        license_text, in_files = "", False
        for line in data.decode("utf-8", errors="replace").splitlines():
            match = _README_BLOCK.match(line.strip())
            if match:
                in_files = match.group(1) == "Files"
                if match.group(1) == "License":
                    license_text = match.group(2).strip()
            elif in_files and line.strip():
                licenses[f"{folder}/{line.strip()}"] = license_text
            elif not line.strip():
                in_files = False
    return licenses


# ---- Noto Color Emoji ------------------------------------------------------------------------------

_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)


def _list_emoji() -> Iterator[PoolItem]:
    from fontTools.ttLib import TTFont

    with TTFont(_root(NOTO_EMOJI_FONT), lazy=True) as font:
        code_points = sorted(font.getBestCmap())
    for code_point in code_points:
        name = unicodedata.name(chr(code_point), "")
        # Symbols only: skips ASCII keycap bases, joiners, variation selectors, tone modifiers, flags' letters.
        if not name or unicodedata.category(chr(code_point)) != "So" or code_point in _REGIONAL_INDICATORS:
            continue
        yield PoolItem(
            source="emoji",
            package="fonts-noto-color-emoji",
            path=f"U+{code_point:04X}",
            caption=name.lower(),
            license="Apache-2.0",
            render="emoji",
        )


# ---- sample photos of Python packages -----------------------------------------------------------

#: (PyPI package, import name, path inside it, licence). Captions are the file names.
SAMPLE_PHOTOS: tuple[tuple[str, str, str, str], ...] = (
    ("scikit-image", "skimage", "data/astronaut.png", "public-domain (NASA)"),
    ("scikit-image", "skimage", "data/camera.png", "CC0 (Lav Varshney)"),
    ("scikit-image", "skimage", "data/chelsea.png", "CC0 (Stefan van der Walt)"),
    ("scikit-image", "skimage", "data/coffee.png", "CC0 (Rachel Michetti)"),
    ("scikit-image", "skimage", "data/motorcycle_left.png", "Middlebury stereo dataset (research use)"),
    ("scikit-image", "skimage", "data/rocket.jpg", "public-domain (SpaceX)"),
    ("scikit-learn", "sklearn", "datasets/images/china.jpg", "CC-BY-2.0 (danielbuechele)"),
    ("scikit-learn", "sklearn", "datasets/images/flower.jpg", "CC-BY-2.0 (vultilion)"),
    ("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "public-domain (US Navy)"),
)


def _package_dir(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    return Path(spec.origin).parent if spec and spec.origin else None


def _list_samples() -> Iterator[PoolItem]:
    for package, import_name, relative, license_text in SAMPLE_PHOTOS:
        base = _package_dir(import_name)
        if base is None or not (base / relative).is_file():
            raise MissingDependencyError(package, "demo", f"the demo sample photo {relative}")
        yield PoolItem(
            source="samples",
            package=package,
            path=f"{import_name}/{relative}",
            caption=_words_of(Path(relative).stem),
            license=license_text,
            render="raster",
        )


def sample_photo_file(path: str) -> Path:
    """The installed file of a ``samples`` item path (``<import name>/<path inside the package>``)."""
    import_name, _, relative = path.partition("/")
    base = _package_dir(import_name)
    if base is None:
        raise MissingDependencyError(import_name, "demo", f"the demo sample photo {path}")
    return base / relative


# ---- registry -----------------------------------------------------------------------------------


def _words_of(stem: str) -> str:
    """A file name as words: ``weighingMachine2`` → ``weighing Machine``, ``polar_bear`` → ``polar bear``."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)
    spaced = re.sub(r"[_\-.]+", " ", spaced)
    return " ".join(re.sub(r"\d+$", "", spaced).split()) or stem


#: Sources in the order their rows appear in the pool (row ids follow this order, then the path).
SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("tuxpaint", (("tuxpaint-stamps-default", TUXPAINT_STAMPS),), _list_tuxpaint, needs_rsvg=True),
        Source("openclipart", (("openclipart-svg", OPENCLIPART_SVG),), _list_openclipart, needs_rsvg=True),
        Source("gcompris", (("gcompris-qt-data", GCOMPRIS_RCC),), _list_gcompris, needs_rsvg=True),
        Source("emoji", (("fonts-noto-color-emoji", NOTO_EMOJI_FONT),), _list_emoji),
        Source("samples", (), _list_samples),
    )
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        import difflib

        raise UnknownNameError("demo source", name, difflib.get_close_matches(name, SOURCES, n=3))
    return SOURCES[name]


def check_source(name: str) -> None:
    """Raise :class:`MissingSystemPackageError` naming the ``apt-get install`` that ``name`` needs."""
    source = get_source(name)
    for package, needed in source.debian_packages:
        if not _root(needed).exists():
            raise MissingSystemPackageError(package, f"the demo source {name!r}", str(_root(needed)))
    if source.needs_rsvg and shutil.which(RSVG_CONVERT) is None:
        raise MissingSystemPackageError("librsvg2-bin", f"the demo source {name!r}", f"{RSVG_CONVERT} on PATH")


def list_items(name: str) -> list[PoolItem]:
    """Every image of source ``name``, sorted by path (checks its packages first)."""
    check_source(name)
    return list(get_source(name).lister())
