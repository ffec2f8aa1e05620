"""The fetcher's safety rules: address checks before connecting, schemes, per-host limits."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import pytest

from laionet_bench.images.fetch import (
    Fetcher,
    FetchPolicy,
    HostLimiter,
    address_refusal,
    blocked_reason,
    is_metadata_address,
    parse_retry_after,
)

from .fakes.images import ImageServer, Reply, image_bytes, redirect


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.9", "private"),
        ("172.16.5.4", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private (IPv4-mapped form of 10.0.0.1)"),
        ("100.64.0.1", "not globally routable"), ("8.8.8.8", None), ("2606:4700::1111", None),
        # IPv6 forms that carry an IPv4 address are judged by it
        ("2002:a00:1::1", "private (6to4 form of 10.0.0.1)"), ("2002:7f00:1::", "loopback (6to4 form of 127.0.0.1)"),
        ("2002:808:808::1", None),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private (Teredo form of 10.0.0.1)"),  # client bits inverted
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None),
        ("64:ff9b::a00:1", "private (NAT64 form of 10.0.0.1)"), ("64:ff9b::a9fe:a9fe", "link-local (NAT64 form of 169.254.169.254)"),
        ("64:ff9b::808:808", None),
    ],
)
def test_blocked_reason(address, reason):
    assert blocked_reason(address) == reason


@pytest.mark.parametrize(
    ("address", "network"),
    [("169.254.169.254", "169.254.169.254/32"), ("fd00:ec2::254", "fd00:ec2::254/128"),
     ("::ffff:169.254.169.254", "169.254.0.0/16"), ("64:ff9b::a9fe:a9fe", "169.254.169.254/32"),
     ("2002:a9fe:a9fe::1", "169.254.169.254/32"), ("169.254.170.2", "169.254.170.2/32"),
     ("100.100.100.200", "100.100.100.200/32")],
)
def test_metadata_endpoints_are_refused_even_with_allow_private(address, network):
    assert is_metadata_address(address)
    refusal = address_refusal(address, allow_private=True)
    assert refusal.startswith("a cloud metadata endpoint, refused even with --allow-private; only --allow-network")
    assert address_refusal(address, allow_private=True, allow_networks=("10.0.0.0/8",)) == refusal
    assert address_refusal(address, allow_networks=(network,)) is None  # named in --allow-network: allowed


def test_allow_private_still_allows_ordinary_private_space():
    assert not is_metadata_address("169.254.1.1") and not is_metadata_address("10.0.0.1")
    assert address_refusal("169.254.1.1", allow_private=True) is None
    assert address_refusal("2002:a00:1::1", allow_private=True) is None
    assert "--allow-private" in address_refusal("2002:a00:1::1")
    assert address_refusal("::ffff:10.1.2.3", allow_networks=("10.0.0.0/8",)) is None  # embedded IPv4 matched


def _only_loopback(monkeypatch) -> list:
    """Record every connection; anything other than 127.0.0.1 fails the test before a packet leaves."""
    import httpcore2._backends.sync as sync_backend

    real = sync_backend.socket.create_connection
    targets = []

    def guarded(address, *args, **kwargs):
        targets.append(address[0])
        if address[0] != "127.0.0.1":
            raise AssertionError(f"tried to connect to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(sync_backend.socket, "create_connection", guarded)
    return targets


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/iam/", "http://[fd00:ec2::254]/latest/",
                                      "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/"])
def test_allow_private_does_not_follow_a_redirect_to_a_metadata_endpoint(monkeypatch, location):
    targets = _only_loopback(monkeypatch)
    with ImageServer({"/hop": redirect(location)}) as srv, Fetcher(FetchPolicy(allow_private=True, timeout=2)) as fetcher:
        result = fetcher.fetch(srv.url("/hop"))
    assert result.status == "refused" and "cloud metadata endpoint" in result.error
    assert set(targets) == {"127.0.0.1"} and srv.requests["/hop"] == 1


def _gaierror(code: int):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        raise socket.gaierror(code, f"fake resolver error {code}")
    return fake_getaddrinfo


def test_nxdomain_is_permanent_and_a_resolver_hiccup_is_not(monkeypatch, no_connections):
    import laionet_bench.images.fetch as fetch
    from laionet_bench.images.manifest import is_retryable

    monkeypatch.setattr(fetch.socket, "getaddrinfo", _gaierror(socket.EAI_NONAME))
    with Fetcher(FetchPolicy()) as fetcher:
        gone = fetcher.fetch("http://no-such-host.invalid/cat.jpg")
    monkeypatch.setattr(fetch.socket, "getaddrinfo", _gaierror(socket.EAI_AGAIN))
    with Fetcher(FetchPolicy()) as fetcher:
        hiccup = fetcher.fetch("http://no-such-host.invalid/cat.jpg")
    assert gone.status == "no_such_host" and "does not exist" in gone.error and not is_retryable(gone.status)
    assert hiccup.status == "connection_error" and is_retryable(hiccup.status)


def test_an_nxdomain_row_is_not_asked_again_on_resume(monkeypatch, tmp_path):
    import laionet_bench.images.fetch as fetch
    from laionet_bench.images.download import DownloadOptions, download_images

    from .conftest import make_index_frame

    asked = []

    def nxdomain(host, port, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch.socket, "getaddrinfo", nxdomain)
    frame = make_index_frame(["n01440764"])
    frame["url"] = ["http://no-such-host.invalid/cat.jpg"]
    options = DownloadOptions(workers=1, retries=2, retry_backoff=0.0)
    first = download_images(frame, tmp_path / "s", options=options, progress=False)
    again = download_images(frame, tmp_path / "s", options=options, progress=False)
    assert first.run_counts == {"no_such_host": 1} and again.attempted == 0
    assert asked == ["no-such-host.invalid"]  # neither retried within the run nor on resume


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 0 ", 0.0), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
     ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0), ("soon", None), ("-5", None), ("", None), (None, None)],
)
def test_parse_retry_after(header, seconds):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


def test_retry_after_is_read_from_429_and_503_only():
    routes = {"/busy": Reply(b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "7"}),
              "/down": Reply(b"", status=503, content_type="text/plain", headers={"Retry-After": "3"}),
              "/error": Reply(b"", status=500, content_type="text/plain", headers={"Retry-After": "3"})}
    with ImageServer(routes) as srv, Fetcher(FetchPolicy(allow_private=True, timeout=2)) as fetcher:
        busy, down, error = (fetcher.fetch(srv.url(p)) for p in routes)
    assert (busy.status, busy.http_code, busy.retry_after) == ("http_error", 429, 7.0)
    assert (down.http_code, down.retry_after) == (503, 3.0)
    assert (error.http_code, error.retry_after) == (500, None)


class _FixedRandom:
    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def test_retry_delay_honours_retry_after_up_to_the_cap_and_has_jitter():
    from laionet_bench.images.download import RETRY_JITTER, DownloadOptions, retry_delay
    from laionet_bench.images.fetch import FetchResult

    options = DownloadOptions(retry_backoff=1.0, max_retry_after=60.0)
    plain = FetchResult("timeout", "u")
    assert retry_delay(0, plain, options, _FixedRandom(0.0)) == 1.0
    assert retry_delay(2, plain, options, _FixedRandom(0.0)) == 4.0
    assert retry_delay(0, plain, options, _FixedRandom(1.0)) == 1.0 + RETRY_JITTER
    asked = FetchResult("http_error", "u", 429, retry_after=30.0)
    assert retry_delay(0, asked, options, _FixedRandom(0.0)) == 30.0  # never sooner than the server asked
    greedy = FetchResult("http_error", "u", 503, retry_after=3600.0)
    assert retry_delay(0, greedy, options, _FixedRandom(0.0)) == 60.0  # capped
    short = FetchResult("http_error", "u", 503, retry_after=0.5)
    assert retry_delay(3, short, options, _FixedRandom(0.0)) == 8.0  # backoff wins when longer
    spread = {retry_delay(0, asked, options, _FixedRandom(v)) for v in (0.1, 0.5, 0.9)}
    assert len(spread) == 3 and all(30.0 <= d < 30.0 * (1 + RETRY_JITTER) for d in spread)


def test_a_429_is_retried_after_its_retry_after():
    from laionet_bench.images.download import DownloadOptions, fetch_with_retries

    data = image_bytes()
    busy = Reply(b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "5"})
    slept = []
    with ImageServer({"/a.jpg": [busy, Reply(data)]}) as srv, \
            Fetcher(FetchPolicy(allow_private=True, timeout=2)) as fetcher:
        result = fetch_with_retries(fetcher, srv.url("/a.jpg"), DownloadOptions(retries=2, retry_backoff=0.1),
                                    sleep=slept.append, rng=_FixedRandom(0.0))
    assert result.status == "ok" and result.data == data
    assert slept == [5.0] and srv.requests["/a.jpg"] == 2


@pytest.fixture
def no_connections(monkeypatch):
    """Fail the test if anything tries to open a socket."""
    import httpcore2._backends.sync as sync_backend

    def forbidden(address, *args, **kwargs):
        raise AssertionError(f"tried to connect to {address}")

    monkeypatch.setattr(sync_backend.socket, "create_connection", forbidden)


def test_hostname_resolving_to_private_space_is_refused_without_connecting(monkeypatch, no_connections):
    import laionet_bench.images.fetch as fetch

    def fake_getaddrinfo(host, port, *args, **kwargs):
        assert host == "intranet.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    monkeypatch.setattr(fetch.socket, "getaddrinfo", fake_getaddrinfo)
    with Fetcher(FetchPolicy()) as fetcher:
        result = fetcher.fetch("http://intranet.example/cat.jpg")
    assert result.status == "refused" and "resolves to 10.0.0.5: private; allow it with" in result.error


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.jpg", "file:///etc/passwd", "data:image/png;base64,AAAA",
                                 "http:///nohost.jpg", "http://127.0.0.1:99999/x.jpg"])
def test_bad_urls_are_refused(url, no_connections):
    with Fetcher(FetchPolicy(allow_private=True)) as fetcher:
        assert fetcher.fetch(url).status == "refused"


def test_allow_private_reaches_loopback_and_redirect_hops_are_rechecked():
    data = image_bytes()
    routes = {"/a.jpg": Reply(data), "/hop": redirect("/a.jpg"), "/out": redirect("http://10.0.0.1/x.jpg")}
    with ImageServer(routes) as srv:
        with Fetcher(FetchPolicy(allow_private=True, timeout=2)) as fetcher:
            assert fetcher.fetch(srv.url("/hop")).data == data
        with Fetcher(FetchPolicy(allow_networks=("127.0.0.0/8",), timeout=2)) as fetcher:
            assert fetcher.fetch(srv.url("/a.jpg")).status == "ok"
            result = fetcher.fetch(srv.url("/out"))
        with Fetcher(FetchPolicy(timeout=2)) as fetcher:
            assert fetcher.fetch(srv.url("/a.jpg")).status == "refused"
    assert result.status == "refused" and "10.0.0.1" in result.error
    assert srv.requests["/a.jpg"] == 2 and srv.requests["/out"] == 1


def test_too_many_redirects_is_a_redirect_loop():
    routes = {f"/r{i}": redirect(f"/r{i + 1}") for i in range(10)}
    with ImageServer(routes) as srv, Fetcher(FetchPolicy(allow_private=True, max_redirects=3)) as fetcher:
        result = fetcher.fetch(srv.url("/r0"))
    assert result.status == "redirect_loop" and "more than 3" in result.error
    assert sum(srv.requests.values()) == 4


def test_requests_carry_a_descriptive_user_agent():
    with ImageServer({"/a.jpg": Reply(image_bytes())}) as srv, Fetcher(FetchPolicy(allow_private=True)) as fetcher:
        fetcher.fetch(srv.url("/a.jpg"))
    agent = srv.last_headers["/a.jpg"]["User-Agent"]
    assert agent.startswith("laionet-bench/") and "github.com" in agent


def test_host_limiter_bounds_concurrency_per_host():
    limiter = HostLimiter(2)
    active: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    lock = threading.Lock()
    release = threading.Event()

    def work(host):
        with limiter.slot(host):
            with lock:
                active[host] += 1
                peak[host] = max(peak[host], active[host])
            release.wait(5)
            with lock:
                active[host] -= 1

    threads = [threading.Thread(target=work, args=(h,)) for h in "aaaaabb"]
    for t in threads:
        t.start()
    for _ in range(500):  # until two of each host hold a slot
        with lock:
            if active["a"] + active["b"] == 4:
                break
        threading.Event().wait(0.01)
    with lock:
        assert active == {"a": 2, "b": 2}  # the other three "a" workers wait
    release.set()
    for t in threads:
        t.join()
    assert peak["a"] <= 2 and peak["b"] <= 2 and not limiter._hosts
