"""The fetcher's safety rules: address checks before connecting, schemes, per-host limits."""

from __future__ import annotations

import socket
import threading

import pytest

from laionet_bench.images.fetch import Fetcher, FetchPolicy, HostLimiter, blocked_reason

from .fakes.images import ImageServer, Reply, image_bytes, redirect


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.9", "private"),
        ("172.16.5.4", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"), ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "not globally routable"), ("8.8.8.8", None), ("2606:4700::1111", None),
    ],
)
def test_blocked_reason(address, reason):
    assert blocked_reason(address) == reason


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
    assert result.status == "refused" and "10.0.0.5 (private)" in result.error


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
