"""Connecting to Ray, in one place: the evaluation's executor, the rebuild's and explain's (through the rebuild's) all join or
start their cluster here.

- **An address** (``HOST:PORT`` of a head's GCS): checked first for a listener that answers like a gRPC server
  (Ray's GCS is one) within :data:`CONNECT_TIMEOUT_S`, because ``ray.init`` waits for minutes on an absent
  cluster or on a port where something else listens; then joined.
- **No address** (and no ``RAY_ADDRESS``): a local, single-node Ray that listens and dials on loopback only, without the dashboard UI.
  Ray resolves ``127.0.0.1`` to the interface address facing the internet (and probes a route to a public DNS
  server to find it) unless its single-machine mode is on, so the mode is switched on for the Ray this process
  starts for itself: its processes read ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the name is Ray's), and this
  driver reads the same constant while it starts them.

Ray itself, whatever is passed here, runs a dashboard process whose usage module probes cloud-metadata addresses
(``169.254.169.254``, ``metadata.google.internal``) unless ``~/ray_bootstrap_config.yaml`` exists, and reports a
disabled-usage ping for clusters made with ``ray start``; docs/evaluation.md says how to turn both off.

Ray is the optional ``ray`` extra, imported only when a Ray executor runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from ..errors import ConfigError, MissingDependencyError

__all__ = ["CONNECT_TIMEOUT_S", "LOOPBACK", "check_reachable", "init", "ray_module", "single_machine"]

#: Seconds to wait for a TCP connection to a Ray address before calling it unreachable (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0
#: The address a local Ray binds and dials.
LOOPBACK = "127.0.0.1"
#: Ray's switch for its single-machine mode (node address = loopback, no route probe), read by each Ray process.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_module(feature: str = "--executor ray") -> ModuleType:
    """``import ray``, or a MissingDependencyError naming the extra that brings it and the ``feature`` that needs it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", feature) from None
    return ray


def check_reachable(address: str, *, option: str = "--ray-address") -> None:
    """A one-line ConfigError unless ``host:port`` accepts a TCP connection within :data:`CONNECT_TIMEOUT_S`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{option} {address}: expected HOST:PORT of a Ray head node (its GCS port, "
                          "6379 by default), or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            speaks_grpc = _answers_http2(conn)
    except OSError as exc:
        raise ConfigError(f"{option} {address}: no Ray cluster reachable there ({exc.strerror or exc}); "
                          "start one with 'ray start --head' or fix the address") from None
    if not speaks_grpc:
        raise ConfigError(f"{option} {address}: no Ray GCS answered there within {CONNECT_TIMEOUT_S:g} s (something "
                          "else listens on that port); give the head's GCS port (6379 by default)")


#: An HTTP/2 client's connection preface and an empty SETTINGS frame (RFC 9113 §3.4), which a gRPC server such
#: as Ray's GCS answers with its own SETTINGS frame first.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def _answers_http2(conn: socket.socket) -> bool:
    """Whether the server on ``conn`` answers an HTTP/2 preface with a SETTINGS frame within the timeout.

    ``ray.init`` waits on a port that accepts TCP but is not a GCS for minutes; gRPC servers answer this at once,
    anything else (an HTTP/1 server, a database, a silent listener) does not.
    """
    conn.sendall(_HTTP2_PREFACE)
    header = b""
    try:
        while len(header) < 9 and (chunk := conn.recv(9 - len(header))):
            header += chunk
    except TimeoutError:
        return False
    return len(header) == 9 and header[3] == _SETTINGS_FRAME


def init(address: str | None, *, option: str = "--ray-address", feature: str = "--executor ray",
         **local: Any) -> ModuleType:
    """Join the cluster at ``address``, or start a local single-node Ray on loopback (``address`` None), unless this
    process is connected already; returns the ``ray`` module.

    Args:
        address: ``HOST:PORT``, ``auto``, ``ray://…``, or None: the cluster in ``RAY_ADDRESS``, else a local Ray.
        option, feature: how the caller's user names the address and the executor, for messages.
        **local: more ``ray.init`` arguments for a local Ray (``num_cpus``, ``num_gpus``, ``runtime_env`` …).

    Raises:
        ConfigError: a malformed or unreachable address, or Ray refusing to connect.
        MissingDependencyError: Ray is not installed.
    """
    ray = ray_module(feature)
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own variable names a cluster to join
    if address and address != "auto" and not address.startswith("ray://"):
        check_reachable(address, option=option)
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address)
        else:
            with single_machine(ray):
                ray.init(include_dashboard=False, _node_ip_address=LOOPBACK, **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{option} {address or '(local)'}: cannot connect to Ray: {first}") from None
    return ray


@contextlib.contextmanager
def single_machine(ray: ModuleType) -> Iterator[None]:
    """Ray's single-machine mode while a Ray starts or is joined: for the processes it spawns (the environment they
    inherit) and for this driver (the constant Ray read from that variable when it was imported).

    :func:`init` uses it for the local Ray it starts. Joining a cluster whose nodes were started on loopback in this
    mode (as the test suite's are) needs it too, since Ray would resolve the address ``127.0.0.1:PORT`` to the
    internet-facing one, where nothing listens; a cluster started the usual way must be joined without it.
    """
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    saved_env, saved_constant = os.environ.get(_SINGLE_MACHINE_ENV), getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    if constants is not None and saved_constant is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = saved_env
        if constants is not None and saved_constant is not None:
            constants.ENABLE_RAY_CLUSTER = saved_constant
