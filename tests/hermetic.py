"""Hermetic test runs: nothing the suite starts may send a packet or a DNS query off loopback.

Two layers, both entered from tests/conftest.py:

1. **A network namespace of its own** (:func:`enter_network_namespace`), entered by the pytest main process before
   it imports anything that starts threads and before pytest-xdist starts its workers, so every process of the run
   inherits it: workers, the loopback servers, Ray's daemons. Only ``lo`` exists there and is brought up, so
   127.0.0.1 and ::1 work and every other address is unreachable. As root a bare ``unshare(CLONE_NEWNET)``; otherwise
   a user namespace with it (our uid mapped to itself, so files keep their owner). Where the platform allows
   neither, the run goes on, says once that it is not isolated (the report header), and relies on layer 2.
2. **In-process guards** (every pytest process): pytest-socket refuses ``connect`` to anything but 127.0.0.1 and ::1
   (``--allow-hosts`` in pyproject's addopts), and :func:`guard_name_resolution` makes resolving any name other
   than ``localhost`` or an IP literal an error instead of a DNS query. A test that needs a name answered
   monkeypatches ``socket.getaddrinfo`` with its own fake, as tests/test_images_fetch.py does.

Ray is configured not to try in the first place: see tests/local_ray.py. ``scripts/check_egress.py`` proves the
whole arrangement with ``strace``.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import os
import socket
import struct

#: Set by the main process for its workers: ``isolated``, or ``not isolated (<why>)``. A caller that sets it has
#: decided for the run (scripts/check_egress.py, which makes a namespace of its own that looks like a networked host).
STATUS_ENV = "LAIONET_BENCH_TESTS_NETNS"
ISOLATED = "isolated"

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sh22x"  # struct ifreq: the interface name, then the flags in a 24-byte union


def enter_network_namespace() -> str:
    """Move this process into a new network namespace with only loopback up, once per run; returns the status.

    The status travels to every process started later through :data:`STATUS_ENV`; a process that finds it set
    (an xdist worker, a subprocess) does nothing.
    """
    status = os.environ.get(STATUS_ENV)
    if status:
        return status
    try:
        _unshare_network()
        _bring_loopback_up()
        status = ISOLATED
    except OSError as exc:
        status = f"not isolated (no network namespace: {exc.strerror or exc})"
    os.environ[STATUS_ENV] = status
    return status


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0 and libc.unshare(_CLONE_NEWNET) == 0:
        return
    uid, gid = os.geteuid(), os.getegid()
    if len(os.listdir("/proc/self/task")) > 1:  # the kernel refuses CLONE_NEWUSER to a process with threads
        raise OSError(0, "not root, and a user namespace needs a process without threads")
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare refused: {os.strerror(errno)}; it needs root or unprivileged user namespaces")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


class NameResolutionBlockedError(RuntimeError):
    """A test tried to resolve a name other than localhost: a DNS query would leave the machine."""


def is_local_name(host: object, *, reverse: bool = False) -> bool:
    """True for what resolves without asking a DNS server: no host, ``localhost``, and an IP literal (connecting to
    it is pytest-socket's to refuse); for a ``reverse`` lookup (address → name), only loopback literals."""
    if host is None or (isinstance(host, str | bytes) and not host):
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or not reverse


#: The resolver functions of :mod:`socket`, and whether each maps an address back to a name.
_RESOLVERS = {"getaddrinfo": False, "gethostbyname": False, "gethostbyname_ex": False, "gethostbyaddr": True,
              "getnameinfo": True}


def guard_name_resolution() -> None:
    """Make the :mod:`socket` resolvers raise for any name that would need a DNS server, in this process."""
    for attr, reverse in _RESOLVERS.items():
        real = getattr(socket, attr)
        if not getattr(real, "_hermetic", False):
            setattr(socket, attr, _guarded(real, attr, reverse))


def _guarded(real, attr: str, reverse: bool):
    def guarded(host, *args, **kwargs):
        name = host[0] if attr == "getnameinfo" else host  # getnameinfo takes a sockaddr tuple
        if not is_local_name(name, reverse=reverse):
            raise NameResolutionBlockedError(f"a test tried to resolve {name!r} (socket.{attr}): that is a DNS query; "
                                             "use 127.0.0.1, or monkeypatch socket.getaddrinfo with a fake")
        return real(host, *args, **kwargs)

    guarded._hermetic = True  # type: ignore[attr-defined]
    return guarded
