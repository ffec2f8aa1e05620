"""The suite's network isolation (tests/hermetic.py), the Ray it starts (tests/local_ray.py) and the egress check
(scripts/check_egress.py) can each fail; these tests show they would."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from pytest_socket import SocketConnectBlockedError

from scripts import check_egress

from .hermetic import ISOLATED, STATUS_ENV, NameResolutionBlockedError, is_local_name

# strace lines as Ray's processes wrote them before the suite configured Ray (tests/local_ray.py)
METADATA_PROBE = ('3187  connect(23, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("169.254.169.254")}, 16)'
                  " = -1 ENETUNREACH (Network is unreachable)")
DNS_QUERY = ('3187  connect(23, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = -1 '
             "ENETUNREACH (Network is unreachable)")
ROUTE_PROBE = '4712  connect(27, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("8.8.8.8")}, 16) = 0'
OWN_INTERFACE = '9249  connect(27, {sa_family=AF_INET, sin_port=htons(34405), sin_addr=inet_addr("10.99.0.2")}, 16) = 0'
SENDMSG_DNS = ("88  sendmsg(5, {msg_name={sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), "
               'inet_pton(AF_INET6, "2001:4860:4860::8888", &sin6_addr), sin6_scope_id=0}, msg_namelen=28}, 0) = 40')
LOOPBACK = [
    '4496  connect(19, {sa_family=AF_INET, sin_port=htons(35857), sin_addr=inet_addr("127.0.0.2")}, 16) = 0',
    "4496  connect(19, {sa_family=AF_INET6, sin6_port=htons(35857), sin6_flowinfo=htonl(0), "
    'inet_pton(AF_INET6, "::ffff:127.0.0.2", &sin6_addr), sin6_scope_id=0}, 28) = -1 EINPROGRESS',
    "7  connect(4, {sa_family=AF_INET6, sin6_port=htons(8080), sin6_flowinfo=htonl(0), "
    'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
    '3153  connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)',
    '12  connect(9, {sa_family=AF_UNIX, sun_path="/tmp/ray/session_1/sockets/raylet"}, 110) = 0',
]


@contextlib.contextmanager
def _loopback_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts one connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        accepting = threading.Thread(target=lambda: server.accept()[0].close())
        accepting.start()
        yield server.getsockname()[1]
        accepting.join()


@pytest.mark.skipif(os.environ.get(STATUS_ENV) != ISOLATED, reason="the platform allows no network namespace here")
def test_the_run_is_in_a_namespace_with_only_loopback():
    assert socket.if_nameindex() == [(1, "lo")]
    with _loopback_server() as port:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # loopback is up


def test_a_test_that_dials_out_fails_loudly():
    # refused before any packet (TEST-NET-1); pytest-socket also warns, which this suite's filterwarnings makes an error
    with pytest.warns(UserWarning, match="192.0.2.1"), pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


@pytest.mark.parametrize("call", [lambda: socket.getaddrinfo("example.invalid", 80),
                                  lambda: socket.gethostbyname("metadata.google.internal"),
                                  lambda: socket.gethostbyaddr("8.8.8.8"),
                                  lambda: socket.getnameinfo(("1.1.1.1", 53), 0)])
def test_resolving_a_name_is_refused_before_any_query(call):
    with pytest.raises(NameResolutionBlockedError, match="DNS query"):
        call()


def test_local_names_still_resolve():
    assert {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)} <= {"127.0.0.1", "::1"}
    assert socket.getaddrinfo("192.0.2.1", 80, type=socket.SOCK_STREAM)[0][4][0] == "192.0.2.1"  # a literal: no query
    assert is_local_name("::1", reverse=True) and not is_local_name("192.0.2.1", reverse=True)
    assert not is_local_name("localhost.example")


@pytest.mark.parametrize("line", [METADATA_PROBE, DNS_QUERY, ROUTE_PROBE, OWN_INTERFACE, SENDMSG_DNS,
                                  '5  connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
                                  '5  connect(3, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0'])
def test_the_egress_check_flags_each_way_out(line, capsys):
    traced = check_egress.calls([line])
    assert len(traced) == 1 and traced[0].offends
    assert check_egress._report(traced + check_egress.calls(LOOPBACK), 0) == 1
    assert "1 call(s) off loopback" in capsys.readouterr().out


def test_the_egress_check_passes_loopback_and_local_sockets_only(capsys):
    assert [c.offends for c in check_egress.calls(LOOPBACK)] == [False] * len(LOOPBACK)
    assert check_egress._report(check_egress.calls(LOOPBACK), 0) == 0
    assert check_egress._report(check_egress.calls(LOOPBACK), 2) == 2  # a failed command proves nothing
    assert check_egress._report(check_egress.calls(LOOPBACK[3:]), 0) == 1  # nor one that never used the network


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is installed by scripts/setup.sh")
def test_the_egress_check_reads_a_real_trace(tmp_path):
    """A child that only dials a closed DNS port on loopback: nothing leaves, and the check still fails on it."""
    dial = ("import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 53))\nexcept OSError:\n    pass\n"
            "socket.create_connection(('127.0.0.1', int(__import__('sys').argv[1]))).close()")
    with _loopback_server() as port:
        result = subprocess.run([sys.executable, str(check_egress.__file__), "--netns", "lo", "--",
                                 sys.executable, "-c", dial, str(port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'inet_addr("127.0.0.1")}' in result.stdout and "1 call(s) off loopback, 1 on loopback" in result.stdout
