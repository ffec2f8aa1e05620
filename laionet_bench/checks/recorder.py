"""Where finished checks are reported while a test runs (kept import-light for the pytest plugin).

The plugin sets a recorder around each test call; :func:`laionet_bench.assert_robustness_gap` and the
baseline comparison report every check they make to it, so the terminal summary and the JSON report
list plain-test assertions as well as marker checks. Outside pytest no recorder is set and nothing
is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["record", "recording"]

_RECORDER: ContextVar[Callable[[object], None] | None] = ContextVar("laionet_bench_recorder", default=None)


@contextlib.contextmanager
def recording(callback: Callable[[object], None]) -> Iterator[None]:
    """Send every check made inside the block to ``callback``."""
    token = _RECORDER.set(callback)
    try:
        yield
    finally:
        _RECORDER.reset(token)


def record(check: object) -> None:
    """Report a finished check to the active recorder, if any."""
    callback = _RECORDER.get()
    if callback is not None:
        callback(check)
