"""Webdataset tar shards that survive ``kill -9``: append-only while open, sealed by a rename.

A shard being written is ``shards/NNNNN.tar.partial``; readers glob ``*.tar`` and never see it.
Each sample is two tar members, ``<key>.<ext>`` (the image bytes) then ``<key>.json`` (its metadata,
including the bytes' sha256); the writer's caller flushes after each batch of samples, so a killed
process loses at most the samples of the batch it was writing. :func:`seal_partial` turns a partial
shard left by a crash into a good one: it keeps the leading verified samples (sha256 as their json
says, members named after the json's row id), cuts the rest, writes the end-of-archive blocks and
renames. Sealed shards are fsynced before the rename.

:func:`iter_tar_index` is the one reader of where a tar's members lie (name, data offset, size), from
the headers alone: the repair walks it, and the datasets locate images inside shards with it (theirs
and timm-style ``wds/`` shards), so an image is read with one ``seek`` + ``read`` and no tar parsing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .manifest import SHARDS_DIR

__all__ = [
    "PARTIAL_SUFFIX",
    "ShardSample",
    "ShardWriter",
    "TarMember",
    "iter_shard_samples",
    "iter_tar_index",
    "next_shard_number",
    "seal_partial",
    "shard_name",
]

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


def shard_name(number: int) -> str:
    """Path of shard ``number`` relative to the store folder (as recorded in the manifest)."""
    return f"{SHARDS_DIR}/{number:05d}.tar"


def next_shard_number(root: Path) -> int:
    """One past the highest shard number present, sealed or partial."""
    numbers = [int(p.name.split(".", 1)[0]) for p in (root / SHARDS_DIR).glob("*.tar*") if p.name[:5].isdigit()]
    return max(numbers, default=-1) + 1


@dataclass
class ShardSample:
    """One complete sample read back from a shard: its key, image extension, bytes and metadata."""

    key: str
    ext: str
    data: bytes
    meta: dict


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(time.time())
    info.mode = 0o644
    return info


class ShardWriter:
    """Writes samples into numbered shards of at most ``max_samples`` samples each.

    :meth:`write` returns the name of the shard the sample went to; :meth:`seal` closes the open
    shard (fsync + rename) and returns its name, or ``None`` when none was open.
    """

    def __init__(self, root: str | Path, *, max_samples: int = 1000):
        self.root = Path(root)
        self.max_samples = max_samples
        self._number = next_shard_number(self.root)
        self._file: BinaryIO | None = None
        self._tar: tarfile.TarFile | None = None
        self._count = 0

    @property
    def current(self) -> str | None:
        """Name of the open shard, if any."""
        return shard_name(self._number) if self._tar is not None else None

    @property
    def is_full(self) -> bool:
        return self._tar is not None and self._count >= self.max_samples

    def write(self, key: str, ext: str, data: bytes, meta: dict) -> str:
        """Append one sample (image then json); :meth:`flush` hands it to the OS."""
        tar = self._tar if self._tar is not None else self._open()
        payload = json.dumps(meta, sort_keys=True).encode("utf-8")
        tar.addfile(_tarinfo(f"{key}.{ext}", len(data)), io.BytesIO(data))
        tar.addfile(_tarinfo(f"{key}.json", len(payload)), io.BytesIO(payload))
        self._count += 1
        return shard_name(self._number)

    def flush(self) -> None:
        """Push written samples to the OS: from here on they survive the process being killed."""
        if self._file is not None:
            self._file.flush()

    def seal(self) -> str | None:
        """Finish the open shard: end-of-archive blocks, fsync, rename ``.partial`` away."""
        if self._tar is None or self._file is None:  # _open() sets both
            return None
        name = shard_name(self._number)
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.root / name
        os.replace(final.with_name(final.name + PARTIAL_SUFFIX), final)
        _fsync_dir(final.parent)
        self._tar = self._file = None
        self._count = 0
        self._number += 1
        return name

    def _open(self) -> tarfile.TarFile:
        path = self.root / (shard_name(self._number) + PARTIAL_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "xb")  # noqa: SIM115 - closed in seal()
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.GNU_FORMAT)
        return self._tar


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


@dataclass(frozen=True)
class TarMember:
    """Where one tar member's bytes lie in the file, as its header says."""

    name: str
    offset: int  # first byte of the member's data
    size: int  # length of the data in bytes
    is_file: bool  # a regular file (not a directory, link, ...)

    @property
    def end(self) -> int:
        """Offset just past the data and its padding to a whole block: where the next header starts."""
        return self.offset + _padded(self.size)

    def read(self, handle: BinaryIO) -> bytes:
        """The member's data, read from ``handle`` (the tar opened in binary mode)."""
        handle.seek(self.offset)
        return handle.read(self.size)


def iter_tar_index(path: str | Path) -> Iterator[TarMember]:
    """Every member of an uncompressed tar, in file order, read from its headers only.

    Lazy, so a caller can stop at the first member it does not trust (a torn shard's tail) before the
    next header is read. Raises what :mod:`tarfile` raises on an unreadable archive
    (``tarfile.TarError``, ``OSError``, ...); each caller turns that into its own error.
    """
    with tarfile.open(path, mode="r:") as archive:
        for member in archive:
            yield TarMember(member.name, member.offset_data, member.size, member.isfile())


def _complete_samples(path: Path) -> Iterator[tuple[ShardSample, int]]:
    """Yield each complete, verified sample and the file offset just past it; stop at the first tear.

    Verified: the image's sha256 is the one its json records, and the members are named after the json's
    ``row_id`` (the manifest locates a row's image by that name, so a sample named otherwise would give
    a row another row's image).
    """
    file_size = path.stat().st_size
    pending: dict[str, tuple[str, bytes]] = {}
    try:
        with open(path, "rb") as handle:
            for member in iter_tar_index(path):
                if not member.is_file or member.offset + member.size > file_size:
                    return
                key, _, ext = member.name.partition(".")
                data = member.read(handle)
                if ext != "json":
                    pending = {key: (ext, data)}
                    continue
                if key not in pending:
                    return
                meta = json.loads(data)
                image_ext, image = pending.pop(key)
                if meta.get("sha256") != hashlib.sha256(image).hexdigest():
                    return
                if key != str(meta.get("row_id")):
                    logger.warning("%s: member %s.json says row_id %r; a sample's name must be its row id, so "
                                   "this sample and the rest of the shard are not used", path, key, meta.get("row_id"))
                    return
                yield ShardSample(key=key, ext=image_ext, data=image, meta=meta), member.end
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:  # a torn header or json ends the good part
        logger.debug("%s: stops being readable: %s", path, exc)


def iter_shard_samples(path: str | Path) -> Iterator[ShardSample]:
    """Every complete, verified sample of a shard (sealed or partial), in order."""
    for sample, _ in _complete_samples(Path(path)):
        yield sample


def seal_partial(path: str | Path) -> tuple[Path, list[ShardSample]]:
    """Repair a ``.partial`` shard left by a crash and rename it into place.

    Keeps the leading run of complete samples, truncates the rest, appends the end-of-archive
    blocks, fsyncs and renames. Returns the sealed path and the samples it holds (their ``data``
    emptied to save memory). A partial shard without any complete sample is deleted.
    """
    path = Path(path)
    samples: list[ShardSample] = []
    good_end = 0
    for sample, end in _complete_samples(path):
        sample.data = b""
        samples.append(sample)
        good_end = end
    final = path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    if not samples:
        path.unlink()
        return final, []
    with open(path, "r+b") as handle:
        handle.truncate(good_end)
        handle.seek(good_end)
        trailer = 2 * _BLOCK
        handle.write(b"\0" * (trailer + (-(good_end + trailer) % _RECORD)))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path, final)
    _fsync_dir(final.parent)
    logger.info("recovered %d samples from interrupted shard %s", len(samples), final.name)
    return final, samples
