"""One ordered table from exceptions to CLI messages (after huggingface_hub's ``cli/_errors.py``)."""

from __future__ import annotations

import os
import sys
import traceback

from .. import constants
from ..errors import DiskWriteError, LaionetBenchError

__all__ = ["report"]

#: (exception type, prefix) — first match wins. Our own errors already say what to do.
CLI_ERROR_MAPPINGS: tuple[tuple[type[BaseException], str], ...] = (
    (LaionetBenchError, "error"),
    (FileNotFoundError, "error: file not found"),
    (PermissionError, "error: permission denied"),
    (MemoryError, "error: out of memory; lower --batch-size"),
)


def report(exc: BaseException, *, debug: bool = False) -> int:
    """Print ``exc`` as one line (traceback only in debug mode) and return the exit status."""
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: completed work is kept; run the same command again to resume", file=sys.stderr)
        return 130
    if isinstance(exc, SystemExit):
        raise exc
    if isinstance(exc, BrokenPipeError):  # `laionet-bench classes | head`: the reader has what it wanted
        _silence_stdout()
        return 128 + 13  # as a process killed by SIGPIPE, the shell convention
    if debug or constants.DEBUG:
        traceback.print_exception(exc, file=sys.stderr)
    exc = DiskWriteError.of(exc, getattr(exc, "filename", None)) or exc  # a full disk is no bug to report
    for kind, prefix in CLI_ERROR_MAPPINGS:
        if isinstance(exc, kind):
            print(f"{prefix}: {exc}", file=sys.stderr)
            break
    else:
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback and report it)",
            file=sys.stderr,
        )
    return 1


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush does not fail on the closed pipe again
    (the recipe of Python's ``signal`` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured by a test): nothing to flush
        pass
