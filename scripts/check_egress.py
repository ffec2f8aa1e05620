"""Prove that the Ray tests send nothing off loopback: run them under ``strace`` and read every address they name.

    python scripts/check_egress.py                  # in a sealed namespace that looks like a networked host
    python scripts/check_egress.py --netns lo       # in the test suite's own namespace (only lo)
    python scripts/check_egress.py -- CMD ...       # any other command instead of the Ray tests

Every ``connect``/``sendto``/``sendmsg``/``sendmmsg`` of every process and thread (``strace -f``) is read; the check
fails if one names an IPv4/IPv6 address outside 127.0.0.0/8 and ::1 (IPv4-mapped loopback included), any port 53
(a DNS server, loopback ones too), or systemd-resolved's socket; and it fails if the command fails or made no
loopback call at all (then it proved nothing). strace logs a call whether or not the network lets it through, so a
namespace changes what would leave, never what is counted.

``--netns routed`` (the default, and what CI runs) makes the failure case real without letting anything out: a new
network namespace with ``lo`` and a veth pair, an address on it and a default route through it, so Ray and the
resolver find what looks like a machine's internet-facing interface, while every packet sent there ends at the
pair's other end inside the namespace. ``--netns lo`` leaves the namespace to the test suite (tests/hermetic.py);
``--netns none`` runs on the real network, to be used only once the other two pass.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY_TESTS = ["tests/test_eval_ray.py", "tests/test_rebuild_ray.py", "tests/test_explain_ray.py"]
TRACED = "connect,sendto,sendmsg,sendmmsg"
#: The test suite's switch for its own namespace (tests/hermetic.py).
NETNS_ENV = "LAIONET_BENCH_TESTS_NETNS"
_INSIDE_ENV = "CHECK_EGRESS_IN_NAMESPACE"
#: Sockets of local resolver daemons that forward to DNS servers.
RESOLVER_SOCKETS = ("/run/systemd/resolve/io.systemd.Resolve", "/run/systemd/resolve/io.systemd.Resolve.Monitor")
#: The sealed namespace of ``--netns routed``: an address, and a gateway that nothing answers for.
ROUTED = ("10.99.0.2/24", "10.99.0.1")

_ADDRESS = re.compile(r'(?:sin_addr=inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6,\s*"(?P<v6>[^"]+)")')
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_UNIX = re.compile(r'sun_path="([^"]*)"')


@dataclass(frozen=True)
class Call:
    """One traced system call that names an address."""

    line: str
    address: str
    port: int | None

    @property
    def offends(self) -> bool:
        if self.port == 53:
            return True
        if self.address.startswith("/"):
            return self.address in RESOLVER_SOCKETS
        return not _is_loopback(self.address)


def _is_loopback(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def calls(lines: Iterable[str]) -> list[Call]:
    """Every call in strace output that names an IP address or a Unix socket path."""
    found = []
    for line in lines:
        port = _PORT.search(line)
        for match in _ADDRESS.finditer(line):
            found.append(Call(line.rstrip("\n"), match.group("v4") or match.group("v6"), int(port.group(1)) if port else None))
        for path in _UNIX.findall(line):
            found.append(Call(line.rstrip("\n"), path, None))
    return found


def _report(traced: list[Call], returncode: int) -> int:
    offending = [c for c in traced if c.offends]
    loopback = sum(1 for c in traced if not c.offends and not c.address.startswith("/"))
    for call in offending[:50]:
        print(f"check-egress: OFF LOOPBACK: {call.line}")
    print(f"check-egress: {len(offending)} call(s) off loopback, {loopback} on loopback; command exit {returncode}")
    if offending:
        return 1
    if returncode != 0:
        print("check-egress: the command failed, so the trace proves nothing; fix it first")
        return returncode
    if not loopback:
        print("check-egress: no loopback call either: the command did not run what it should check")
        return 1
    return 0


def _traced_run(command: list[str], env: dict[str, str]) -> int:
    strace = shutil.which("strace")
    if not strace:
        sys.exit("check-egress: strace is not installed (scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="egress-") as tmp:
        log = Path(tmp) / "strace.log"
        code = subprocess.call([strace, "-f", "-qq", "--seccomp-bpf", "-e", f"trace={TRACED}", "-o", str(log),
                                *command], cwd=REPO, env=env)
        with log.open(errors="replace") as lines:
            return _report(calls(lines), code)


def _routed_namespace() -> None:
    """Inside a fresh network namespace: ``lo`` up, a veth pair with an address and a default route into it."""
    address, gateway = ROUTED
    for step in (["link", "set", "lo", "up"], ["link", "add", "egress0", "type", "veth", "peer", "name", "egress1"],
                 ["addr", "add", address, "dev", "egress0"], ["link", "set", "egress0", "up"],
                 ["link", "set", "egress1", "up"], ["route", "add", "default", "via", gateway, "dev", "egress0"]):
        subprocess.run(["ip", *step], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", choices=["routed", "lo", "none"], default="routed")
    parser.add_argument("command", nargs="*", help="what to trace (default: the Ray tests)")
    args = parser.parse_args(argv)
    command = args.command or [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *RAY_TESTS]
    env = dict(os.environ)
    if args.netns == "routed" and not os.environ.get(_INSIDE_ENV):
        unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
        return subprocess.call([*unshare, sys.executable, __file__, "--netns", "routed", "--", *command],
                               env={**env, _INSIDE_ENV: "1"})
    if args.netns == "routed":
        _routed_namespace()
        env[NETNS_ENV] = "isolated: the sealed, routed namespace of scripts/check_egress.py"
    elif args.netns == "none":
        env[NETNS_ENV] = "not isolated (scripts/check_egress.py --netns none)"
    return _traced_run(command, env)


if __name__ == "__main__":
    sys.exit(main())
