"""The vocabulary of robustness checks — metrics, weightings, tolerances — parsed in one place.

Import-light on purpose: the pytest plugin parses ``--laionet-tolerance`` and marker keywords with these
functions in every pytest run.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

__all__ = ["METRIC_CHOICES", "WEIGHTING_CHOICES", "metric_key", "parse_tolerance"]

METRIC_CHOICES = ("top1", "top5")
WEIGHTING_CHOICES = ("equi", "laion")


def parse_tolerance(value: object) -> float:
    """``"se"`` → 1.0; a non-negative number (or numeric string) → that many standard errors."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "se":
            return 1.0
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"tolerance {value!r} is neither 'se' nor a number of standard errors") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"tolerance {value!r} must be 'se' or a finite number of standard errors >= 0")
    return float(value)


def metric_key(metric: str, weighting: str) -> str:
    """The summary key for ``metric`` under ``weighting``: ``top1`` / ``lw_top1`` ..."""
    if metric not in METRIC_CHOICES:
        raise ConfigError(f"metric {metric!r} is not one of {METRIC_CHOICES}")
    if weighting not in WEIGHTING_CHOICES:
        raise ConfigError(f"weighting {weighting!r} is not one of {WEIGHTING_CHOICES}")
    return metric if weighting == "equi" else f"lw_{metric}"
