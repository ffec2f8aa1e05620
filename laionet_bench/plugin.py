"""pytest plugin (``pytest11`` entry point): LAIONet robustness assertions inside a test suite.

Registered for every pytest run in an environment where laionet-bench is installed, so it must stay
cheap to import: nothing heavy at module level.
"""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "laionet(model, max_gap, min_accuracy, metric, weighting, tolerance): LAIONet robustness check"
    )
