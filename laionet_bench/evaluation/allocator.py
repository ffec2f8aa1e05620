"""glibc's allocator at the pace of a CPU forward pass: one switch per process, and the trim between waves.

glibc serves every allocation above its mmap threshold (dynamic, at most 32 MiB) with a fresh ``mmap`` and
gives it back with ``munmap`` on ``free``. A CPU forward pass of a batch of 64 at 224 px allocates ~100 MB of
activations layer after layer, so every layer of every batch maps new pages, faults them in one by one (the
kernel zeroes each) and unmaps them again. On the demo (one EfficientNet-Lite0, 2 cores) that was 86–99 s
wall, 84–95 s of it system time, 38.7 M minor faults; with glibc keeping those blocks, 39–42 s and 8–9 s
(``benchmarks/cpu_allocator_results.md``).

:func:`tune_allocator` sets, through ``mallopt``, ``M_MMAP_MAX = 0`` (no block is mmapped: large ones come from
the heap and are reused by the next batch) and a high ``M_TRIM_THRESHOLD`` (``free`` does not shrink the heap
either). The heap then keeps what a forward pass freed until :func:`trim` (``malloc_trim(0)``, which the engine
calls between waves) returns it: glibc ≥ 2.8 shrinks the heap's top *and* ``madvise``s every free page of every
arena back to the OS. Only where memory comes from changes, never a value: predictions are bit-identical
(``tests/test_allocator.py``).

It needs nothing installed (preloading tcmalloc or jemalloc does the same). Anything but glibc (musl, macOS):
both functions do nothing, silently. ``LAIONET_BENCH_ALLOCATOR=default`` leaves glibc's settings alone. Limit:
glibc's per-thread arenas grow in heaps of at most 64 MiB, so a block larger than that allocated outside the
main thread is still mmapped (the engine forwards in the main thread on one device).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable
from functools import lru_cache

from .. import constants
from ..errors import ConfigError

__all__ = ["ALLOCATOR_MODES", "M_MMAP_MAX", "M_TRIM_THRESHOLD", "TRIM_THRESHOLD", "trim", "tune_allocator"]

logger = logging.getLogger(__name__)

#: ``mallopt`` parameters, as glibc's ``<malloc.h>`` numbers them.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The trim threshold set: ``mallopt`` takes an int, and 2 GiB is far above what a forward pass frees at the top.
TRIM_THRESHOLD = 2**31 - 1


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it exports ``gnu_get_libc_version``; musl does not), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def _tuned(libc: ctypes.CDLL) -> bool:
    """No mmapped blocks, no trimming on free: ``mallopt`` answers 1 for each parameter it took."""
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def _untouched(libc: ctypes.CDLL) -> bool:
    return False


#: ``LAIONET_BENCH_ALLOCATOR`` values → what each does to glibc; returns True when it set parameters.
ALLOCATOR_MODES: dict[str, Callable[[ctypes.CDLL], bool]] = {"tuned": _tuned, "default": _untouched}


def tune_allocator(mode: str | None = None) -> bool:
    """Keep the forward pass's large blocks in glibc's heap, for this process (the CLI does it once at start).

    Python users of the library call it once, before their first evaluation::

        import laionet_bench
        laionet_bench.tune_allocator()

    Args:
        mode: ``tuned`` or ``default`` (leave glibc's settings as they are); default: ``LAIONET_BENCH_ALLOCATOR``,
            else ``tuned``.

    Returns:
        True when it set glibc's parameters; False for ``default`` and on any C library but glibc.

    Raises:
        ConfigError: an unknown mode.
    """
    mode = mode or constants.ALLOCATOR
    apply = ALLOCATOR_MODES.get(mode)
    if apply is None:
        raise ConfigError(f"allocator mode {mode!r} (LAIONET_BENCH_ALLOCATOR) is unknown: use one of "
                          f"{', '.join(ALLOCATOR_MODES)}")
    libc = _glibc()
    if libc is None:
        return False
    done = apply(libc)
    if done:
        logger.debug("glibc malloc tuned: no mmapped blocks, trim threshold %d (LAIONET_BENCH_ALLOCATOR=default "
                     "keeps glibc's own)", TRIM_THRESHOLD)
    return done


def trim() -> bool:
    """Return the heap's free memory to the OS (``malloc_trim(0)``); True when there was some to return.

    Without it glibc keeps freed model weights in its heap — and with :func:`tune_allocator` every freed
    activation too — so the engine calls it between waves (``inference.release_memory``).
    """
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None and hasattr(libc, "malloc_trim") else False
