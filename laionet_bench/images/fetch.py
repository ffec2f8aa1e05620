"""Fetch one image URL politely and safely: the HTTP half of ``laionet-bench download``.

Safety comes before speed. Every hostname is resolved by us and every address checked *before* a
socket is opened (:class:`GuardedBackend`), so a URL, or any redirect hop, that points at loopback,
private, link-local, multicast or reserved space is refused without a packet being sent (unless
``allow_private``, which tests use). IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, Teredo,
NAT64) are judged by that IPv4 address, so they cannot smuggle a private one past the check. Cloud
metadata services (:data:`METADATA_ADDRESSES`), where a redirect would hand out instance credentials,
are refused even with ``allow_private``: only an ``allow_networks`` entry that contains them lets
them through. Redirects are followed by hand, each hop re-checked; bodies are streamed with a byte
cap and a total deadline; each host gets a bounded number of concurrent requests. A host name that
does not exist (NXDOMAIN) is a permanent failure, ``no_such_host``, not a retryable connection error.

The client is ``httpcore2`` (the transport under ``httpx2``, already installed with huggingface_hub):
a thread-safe keep-alive connection pool whose network backend we can replace.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpcore2

from ..errors import ConfigError
from ..version import __version__

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_TIMEOUT",
    "MAX_TOTAL_TIMEOUT",
    "METADATA_ADDRESSES",
    "FetchPolicy",
    "FetchResult",
    "Fetcher",
    "GuardedBackend",
    "HostLimiter",
    "NoSuchHostError",
    "RefusedAddressError",
    "address_refusal",
    "blocked_reason",
    "check_options",
    "embedded_ipv4",
    "is_metadata_address",
    "parse_retry_after",
    "resolve_checked",
]

DEFAULT_USER_AGENT = (
    f"laionet-bench/{__version__} (+https://github.com/laionet-bench/laionet-bench; "
    "research image fetcher; one request per image)"
)
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: Characters left as they are when percent-encoding a path or query (``%`` keeps existing escapes).
_SAFE_PATH = "/%:@!$&'()*+,;=~-._"
_SAFE_QUERY = _SAFE_PATH + "?"
_MARKUP_PREFIXES = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<svg", b"<!--", b"<script", b"{", b"[")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
#: Instance-metadata services of the clouds (AWS, GCP, Azure, OpenStack ...: 169.254.169.254; AWS over
#: IPv6: fd00:ec2::254; AWS ECS tasks: 169.254.170.2; Alibaba: 100.100.100.200; Oracle: 192.0.0.192).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192",
))
#: NAT64 prefixes whose last 32 bits are the IPv4 destination (well-known RFC 6052, local-use RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
#: Answers to 429 (too many requests) and 503 (unavailable) may say when to come back.
_RETRY_AFTER_CODES = frozenset({429, 503})
#: getaddrinfo errors meaning the name has no address at all (NXDOMAIN, or no A/AAAA record).
_NO_SUCH_HOST = frozenset(c for c in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if c is not None)


def check_options(options: object, rules: Iterable[tuple[str, str | None, Callable[[Any], bool], str]]) -> None:
    """Raise :class:`ConfigError` for the first ``(field, flag, is_valid, rule)`` that ``options`` breaks.

    Shared by :class:`FetchPolicy` and ``DownloadOptions`` so the Python API refuses what the CLI
    refuses, with the same one-line message naming the field, its flag and the rule.
    """
    for name, flag, is_valid, rule in rules:
        value = getattr(options, name)
        if not is_valid(value):
            where = f" ({flag})" if flag else ""
            raise ConfigError(f"download option {name}={value!r}{where} {rule}")


#: Longest connect/read timeout accepted, in seconds (a day; a whole fetch: a week). More means none, and
#: sockets overflow near 10**10 s (``--timeout inf`` was an OverflowError).
MAX_TIMEOUT = 24 * 3600
MAX_TOTAL_TIMEOUT = 7 * MAX_TIMEOUT


def _is_cidr_list(networks: object) -> bool:
    if isinstance(networks, str) or not isinstance(networks, Iterable):
        return False
    try:
        for network in networks:
            ipaddress.ip_network(network, strict=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class FetchPolicy:
    """How one URL is fetched.

    Network limits:
        timeout: seconds allowed for connecting and for each read.
        total_timeout: seconds for the whole fetch, redirects included (guards against slow drips).
        max_redirects: hops followed before the URL counts as a redirect loop.
        max_bytes: body size above which the image is ``too_large`` (checked while streaming).
    Safety and politeness:
        allow_private: connect to loopback/private/link-local/reserved addresses (intranets).
        allow_networks: CIDR blocks allowed even though not public, e.g. ``("127.0.0.0/8",)`` for a
            loopback test server while every other private address stays refused.
        per_host: concurrent requests to one host at most.
        user_agent: sent with every request.

    Bad values raise :class:`~laionet_bench.errors.ConfigError` here, before any work starts.
    """

    timeout: float = 10.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 20 * 2**20
    allow_private: bool = False
    allow_networks: tuple[str, ...] = ()
    per_host: int = 8
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self):
        check_options(self, (
            ("timeout", "--timeout", lambda v: 0 < v <= MAX_TIMEOUT,  # nan and inf fail too
             f"must be more than 0 seconds and at most a day ({MAX_TIMEOUT})"),
            ("total_timeout", None, lambda v: 0 < v <= MAX_TOTAL_TIMEOUT,
             f"must be more than 0 seconds and at most a week ({MAX_TOTAL_TIMEOUT})"),
            ("max_redirects", "--max-redirects", lambda v: v >= 0, "must be 0 (follow none) or more"),
            ("max_bytes", "--max-bytes", lambda v: v >= 1, "must be at least 1 byte"),
            ("per_host", "--per-host", lambda v: v >= 1,
             "must be at least 1 (with 0 no request could ever start)"),
            ("allow_networks", "--allow-network", _is_cidr_list,
             "must be a list of CIDR networks such as 127.0.0.0/8 or ::1/128"),
            ("user_agent", "--user-agent", lambda v: isinstance(v, str) and v.isprintable(),
             "must be one line of printable text (no CR, LF or other control character: it is an HTTP header)"),
        ))


@dataclass
class FetchResult:
    """What one fetch produced: ``status`` ``ok`` with the body, or a failure kind with the reason."""

    status: str
    url: str
    http_code: int | None = None
    error: str | None = None
    data: bytes | None = None
    retry_after: float | None = None  # seconds a 429/503 answer asked us to wait (Retry-After)


class RefusedAddressError(ConnectionRefusedError):
    """A host resolved to an address the policy forbids; raised before any socket is opened."""


class NoSuchHostError(OSError):
    """DNS says the host name does not exist (NXDOMAIN) or has no address: retrying will not help."""


class _Failure(Exception):
    """Internal: ends a fetch with a manifest status."""

    def __init__(self, status: str, message: str, http_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.http_code = http_code
        self.retry_after = retry_after


def _ip(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address):
    return ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)


def embedded_ipv4(address: str) -> tuple[str, ipaddress.IPv4Address] | None:
    """``(form, IPv4 address)`` when an IPv6 address carries one (IPv4-mapped, 6to4, Teredo, NAT64), else ``None``.

    Packets to such an address end up at the IPv4 address, so that is the one to judge. Teredo's is
    the client address (the destination); its server address only relays.
    """
    ip = _ip(address)
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    if any(ip in prefix for prefix in _NAT64):
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(address: str) -> str | None:
    """Why ``address`` must not be contacted (``"loopback"``, ``"private"`` ...), or ``None`` if it is public.

    An IPv6 address carrying an IPv4 one (:func:`embedded_ipv4`) is judged by the IPv4 address alone.
    """
    ip = _ip(address)
    embedded = embedded_ipv4(address)
    if embedded is not None:
        form, ipv4 = embedded
        reason = blocked_reason(str(ipv4))
        return reason and f"{reason} ({form} form of {ipv4})"
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "not globally routable"


def is_metadata_address(address: str) -> bool:
    """Whether ``address`` is a cloud metadata service (:data:`METADATA_ADDRESSES`), directly or embedded."""
    embedded = embedded_ipv4(address)
    return _ip(address) in METADATA_ADDRESSES or (embedded is not None and embedded[1] in METADATA_ADDRESSES)


def _in_networks(address: str, networks: tuple) -> bool:
    embedded = embedded_ipv4(address)
    candidates = [_ip(address)] + ([embedded[1]] if embedded else [])
    return any(ip.version == net.version and ip in net for ip in candidates for net in networks)


def address_refusal(address: str, *, allow_private: bool = False, allow_networks: tuple[str, ...] = ()) -> str | None:
    """Why the policy refuses to contact ``address`` and what would allow it, or ``None`` when it may be contacted.

    An ``allow_networks`` entry containing the address (or the IPv4 address it carries) always allows it;
    otherwise a metadata service is refused even with ``allow_private``, and other non-public
    addresses are refused unless ``allow_private``.
    """
    networks = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)
    if _in_networks(address, networks):
        return None
    if is_metadata_address(address):
        return (f"a cloud metadata endpoint, refused even with --allow-private; "
                f"only --allow-network {_ip(address)}/{_ip(address).max_prefixlen} allows it")
    if allow_private:
        return None
    reason = blocked_reason(address)
    return reason and f"{reason}; allow it with --allow-private or --allow-network CIDR"


def resolve_checked(host: str, port: int, *, allow_private: bool, allow_networks: tuple[str, ...] = ()) -> list[str]:
    """Resolve ``host`` and return its addresses; refuse if any of them is refused (:func:`address_refusal`).

    Raises :class:`NoSuchHostError` when the name does not exist, :class:`RefusedAddressError` for a
    refused address, and ``httpcore2.ConnectError`` for resolver trouble that may pass (EAI_AGAIN ...).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in _NO_SUCH_HOST:
            raise NoSuchHostError(f"host {host!r} does not exist ({exc.strerror})") from None
        raise httpcore2.ConnectError(f"cannot resolve {host!r}: {exc}") from None
    except UnicodeError as exc:
        raise httpcore2.ConnectError(f"cannot resolve {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # TCP addresses: always a str
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private, allow_networks=allow_networks)
        if refusal:
            raise RefusedAddressError(f"{host} resolves to {address}: {refusal}")
    return addresses


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date; ``None`` if absent or unreadable.

    A date in the past gives 0. Capping is the caller's business (``DownloadOptions.max_retry_after``).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class GuardedBackend(httpcore2.SyncBackend):
    """A network backend that connects only to checked addresses (no DNS rebinding between check and use)."""

    def __init__(self, *, allow_private: bool = False, allow_networks: tuple[str, ...] = ()):
        self.allow_private = allow_private
        self.allow_networks = tuple(allow_networks)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last_error: Exception | None = None
        addresses = resolve_checked(host, port, allow_private=self.allow_private, allow_networks=self.allow_networks)
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:  # try the next address of the host
                last_error = exc
        raise last_error or httpcore2.ConnectError(f"no address for {host!r}")


class HostLimiter:
    """At most ``per_host`` concurrent holders of a slot per host; idle hosts are forgotten."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._hosts: dict[str, list] = {}  # host -> [semaphore, users]

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._lock:
            entry = self._hosts.setdefault(host, [threading.Semaphore(self.per_host), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._hosts[host]


@dataclass(frozen=True)
class _Target:
    url: str
    host: str
    request_url: httpcore2.URL


def _parse_target(url: str) -> _Target:
    """Check the scheme and host of ``url`` and percent-encode it for the wire."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _Failure("refused", f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _Failure("refused", f"scheme {scheme or '(none)'!r} is not http or https")
    if not parts.hostname:
        raise _Failure("refused", "URL has no host")
    try:
        host = parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise _Failure("refused", f"bad host name {parts.hostname!r}: {exc}") from None
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    request_url = httpcore2.URL(scheme=scheme.encode(), host=host, port=port, target=target.encode("ascii"))
    return _Target(url=url, host=parts.hostname, request_url=request_url)


def _header(response: httpcore2.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _looks_like_markup(first: bytes, content_type: str | None) -> bool:
    """HTML/XML/JSON served where an image was expected (error pages, login walls, SVG)."""
    head = first.lstrip()[:16].lower()
    if head.startswith(_IMAGE_MAGIC) or (head.startswith(b"riff") and first.lstrip()[8:12] == b"WEBP"):
        return False
    if content_type and content_type.lower().startswith(("text/", "application/json", "application/xhtml")):
        return True
    return head.startswith(_MARKUP_PREFIXES)


class Fetcher:
    """Fetches URLs under one :class:`FetchPolicy` with a shared keep-alive pool; safe to use from threads."""

    def __init__(self, policy: FetchPolicy, *, max_connections: int = 64):
        self.policy = policy
        self._limiter = HostLimiter(policy.per_host)
        self._pool = httpcore2.ConnectionPool(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private=policy.allow_private, allow_networks=policy.allow_networks),
        )

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def fetch(self, url: str) -> FetchResult:
        """One attempt at ``url``: follows redirects, never raises for network or content problems."""
        try:
            return self._follow(url)
        except _Failure as failure:
            return FetchResult(failure.status, url, failure.http_code, str(failure), retry_after=failure.retry_after)
        except RefusedAddressError as exc:
            return FetchResult("refused", url, None, str(exc))
        except NoSuchHostError as exc:
            return FetchResult("no_such_host", url, None, str(exc))
        except httpcore2.TimeoutException as exc:
            return FetchResult("timeout", url, None, f"{type(exc).__name__}: {exc}".rstrip(": "))
        except (httpcore2.NetworkError, httpcore2.ProtocolError, OSError) as exc:
            return FetchResult("connection_error", url, None, f"{type(exc).__name__}: {exc}".rstrip(": "))

    def _follow(self, url: str) -> FetchResult:
        deadline = time.monotonic() + self.policy.total_timeout
        seen: set[str] = set()
        current = url
        for _ in range(self.policy.max_redirects + 1):
            if current in seen:
                raise _Failure("redirect_loop", f"redirect loop back to {current}")
            seen.add(current)
            target = _parse_target(current)
            with self._limiter.slot(target.host):
                outcome = self._request(target, deadline)
            if isinstance(outcome, FetchResult):
                return outcome
            current = urljoin(current, outcome)
        raise _Failure("redirect_loop", f"more than {self.policy.max_redirects} redirects (last: {current})")

    def _request(self, target: _Target, deadline: float) -> FetchResult | str:
        """GET one hop: a result, or the Location of a redirect."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore2.ReadTimeout(f"total time limit of {self.policy.total_timeout:g}s exceeded")
        step = min(self.policy.timeout, remaining)
        headers = [
            (b"User-Agent", self.policy.user_agent.encode()),
            (b"Accept", b"image/avif,image/webp,image/*,*/*;q=0.8"),
            (b"Accept-Encoding", b"identity"),
        ]
        extensions = {"timeout": {"connect": step, "read": step, "write": step, "pool": remaining}}
        with self._pool.stream("GET", target.request_url, headers=headers, extensions=extensions) as response:
            code = response.status
            if code in _REDIRECT_CODES:
                location = _header(response, b"location")
                if not location:
                    raise _Failure("http_error", f"HTTP {code} redirect without a Location header", code)
                return location
            if not 200 <= code < 300:
                wait = parse_retry_after(_header(response, b"retry-after")) if code in _RETRY_AFTER_CODES else None
                raise _Failure("http_error", f"HTTP {code}", code, wait)
            length = _header(response, b"content-length")
            if length and length.isdigit() and int(length) > self.policy.max_bytes:
                raise _Failure("too_large", f"Content-Length {length} exceeds {self.policy.max_bytes} bytes", code)
            data = self._read_body(response, deadline, _header(response, b"content-type"))
        return FetchResult("ok", target.url, code, None, data)

    def _read_body(self, response: httpcore2.Response, deadline: float, content_type: str | None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        code = response.status
        for chunk in response.iter_stream():
            if not chunks and _looks_like_markup(chunk, content_type):
                raise _Failure("not_image", f"markup served with HTTP {code} (Content-Type {content_type})", code)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.policy.max_bytes:
                raise _Failure("too_large", f"body exceeds {self.policy.max_bytes} bytes", code)
            if time.monotonic() > deadline:
                raise httpcore2.ReadTimeout(f"total time limit of {self.policy.total_timeout:g}s exceeded")
        if not size and content_type and content_type.lower().startswith("text/"):
            raise _Failure("not_image", f"empty {content_type} body", code)
        return b"".join(chunks)
