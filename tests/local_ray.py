"""A hermetic Ray for the tests: every process on 127.0.0.1, no cloud-metadata probe, no usage report, no dashboard.

What Ray 2.x does unless told otherwise, read from its source, and the switch for each:

- its dashboard process runs even with ``include_dashboard=False``, and its usage module asks the cloud-metadata
  addresses (``169.254.169.254``, ``metadata.google.internal``) which cloud it is on when
  ``~/ray_bootstrap_config.yaml`` is missing (``usage_lib.get_cluster_config_to_report``): Ray's processes get a
  ``HOME`` of their own that holds an empty one;
- a cluster made with ``ray start`` sends a "usage disabled" report to ``usage-stats.ray.io``
  (``UsageStatsHead._report_disabled_usage_sync``): ``RAY_USAGE_STATS_ENABLED=0`` and, as a backstop, the report
  URL at a closed loopback port;
- it binds and dials the interface address facing the internet, found by connecting a UDP socket to 8.8.8.8,
  even for ``--node-ip-address 127.0.0.1``: Ray's single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``)
  makes every Ray process use loopback. A local Ray starts through the package's own
  :func:`laionet_bench.evaluation.ray_cluster.init`, which switches the mode on; ``ray start`` goes through
  :func:`main`, since Ray refuses a second node in that mode; a driver joins such a cluster with :func:`join`.

``scripts/check_egress.py`` runs the Ray tests under ``strace`` and fails on any address but loopback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Port 9 (discard) on loopback: nothing listens there in a test run, so a report that slips through goes nowhere.
CLOSED_LOOPBACK_URL = "http://127.0.0.1:9/"


@functools.cache
def ray_env() -> dict[str, str]:
    """The environment of every Ray process a test starts (created once per test process)."""
    home = Path(tempfile.mkdtemp(prefix="ray-home-"))
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")  # present: Ray's usage module asks no cloud metadata
    return {
        "HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": CLOSED_LOOPBACK_URL,
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        "RAY_AUTH_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }


@contextlib.contextmanager
def hermetic_env() -> Iterator[None]:
    """:func:`ray_env` in this process's environment, which the Ray processes it starts inherit."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in ray_env().items():
            env.setenv(key, value)
        yield


@contextlib.contextmanager
def hermetic_ray(**options) -> Iterator[None]:
    """A local Ray started the way ``--executor ray`` starts one (``ray_cluster.init(None)``), stopped on exit."""
    import ray

    from laionet_bench.evaluation import ray_cluster

    with hermetic_env():
        ray_cluster.init(None, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}}, **options)
        try:
            yield
        finally:
            ray.shutdown()


def join(address: str) -> None:
    """Connect this process to the loopback cluster at ``address`` (started by :func:`ray_start`), in the same mode."""
    import ray

    from laionet_bench.evaluation import ray_cluster

    with ray_cluster.single_machine(ray):
        ray.init(address=address, log_to_driver=False)


def ray_start(*args: str) -> subprocess.Popen:
    """``ray start --block ARGS`` on 127.0.0.1, in its own session: SIGTERM stops exactly the processes it started."""
    command = [sys.executable, "-m", "tests.local_ray", "start", "--block", "--disable-usage-stats",
               "--node-ip-address", "127.0.0.1", *args]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **ray_env()})


def main() -> None:
    """``ray`` (its CLI) with every process it starts in single-machine mode, while this one may add a node.

    Ray reads the mode into a constant when imported: this process imports it with the mode off (a second node
    is allowed) and answers Ray's route probe with loopback; the processes it starts inherit the mode on.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
    from ray._private import services
    from ray.scripts.scripts import main as ray_main

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"
    sys.exit(ray_main())


if __name__ == "__main__":
    main()
