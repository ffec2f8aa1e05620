"""A disk that fills up (or turns read-only) under chosen files: the OS error injected where writes start."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from laionet_bench import _io

__all__ = ["full_disk_under"]


def full_disk_under(monkeypatch: pytest.MonkeyPatch, fragment: str, code: int = errno.ENOSPC) -> None:
    """Every atomic write whose target path contains ``fragment`` fails as the OS fails it: ``OSError(code)``
    naming the temp file, as ``os.open`` would on a full disk (ENOSPC, EDQUOT) or a read-only mount (EROFS)."""
    create = _io._create_temp

    def failing(target: Path):
        if fragment in str(target):
            raise OSError(code, os.strerror(code), str(target.with_name(f".{target.name}.0.tmp")))
        return create(target)

    monkeypatch.setattr(_io, "_create_temp", failing)
