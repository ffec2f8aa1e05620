"""Read files out of Qt binary resource archives (``.rcc``), where GCompris keeps its images.

Debian's ``gcompris-qt-data`` ships one ``.rcc`` per activity and no loose images; Qt's own ``rcc``
tool is not installed with it, so this module reads the format directly (Qt's ``qresource.cpp``):

    header  "qres", version, tree offset, data offset, names offset (big-endian uint32; v3 adds flags)
    tree    nodes of 14 bytes (v1) or 22 bytes (v2+): name offset u32, flags u16, then
            directory: child count u32, first child u32 | file: country u16, language u16, data offset u32
    names   u16 length, u32 hash, UTF-16-BE characters
    data    u32 size, payload; flag 1 = qCompress (u32 length + zlib), flag 4 = zstd (unsupported here)
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ..errors import DatasetError

__all__ = ["read_rcc"]

_MAGIC = b"qres"
_DIRECTORY = 0x02
_ZLIB = 0x01
_ZSTD = 0x04


def read_rcc(path: str | Path) -> dict[str, bytes]:
    """Every file of the archive at ``path``: resource path (no leading ``/``) → uncompressed bytes."""
    path = Path(path)
    blob = path.read_bytes()
    if blob[:4] != _MAGIC or len(blob) < 20:
        raise DatasetError(f"{path}: not a Qt resource archive (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 14 if version == 1 else 22
    files: dict[str, bytes] = {}
    stack: list[tuple[int, str]] = [(0, "")]
    try:
        while stack:
            index, prefix = stack.pop()
            node = tree + index * node_size
            name_offset, flags = struct.unpack(">IH", blob[node : node + 6])
            name = _name_at(blob, names + name_offset) if index else ""
            if flags & _DIRECTORY:
                count, first = struct.unpack(">II", blob[node + 6 : node + 14])
                child_prefix = f"{prefix}{name}/" if index else ""
                stack.extend((child, child_prefix) for child in range(first, first + count))
                continue
            (data_offset,) = struct.unpack(">I", blob[node + 10 : node + 14])
            files[prefix + name] = _payload(blob, data + data_offset, flags, path, prefix + name)
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: corrupt Qt resource archive ({exc}); reinstall its Debian package") from None
    return files


def _name_at(blob: bytes, offset: int) -> str:
    (length,) = struct.unpack(">H", blob[offset : offset + 2])
    return blob[offset + 6 : offset + 6 + 2 * length].decode("utf-16-be")


def _payload(blob: bytes, offset: int, flags: int, path: Path, name: str) -> bytes:
    (size,) = struct.unpack(">I", blob[offset : offset + 4])
    raw = blob[offset + 4 : offset + 4 + size]
    if flags & _ZSTD:
        raise DatasetError(f"{path}: {name} is zstd-compressed, which this reader does not support")
    if flags & _ZLIB:
        return zlib.decompress(raw[4:])  # qCompress prefixes the uncompressed length
    return raw
