"""URL inputs against a misbehaving local server on 127.0.0.1 (never any other address)."""

from __future__ import annotations

import time

import pytest
from url_server import Server

from ptmcli.downloads import read_url
from ptmcli.errors import InputError
from ptmcli.pipeline.inputs import URL_OFFLINE, URL_SCHEMES_ONLY, collect

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(scope="module")
def server():
    served = Server()
    yield served
    served.close()


@pytest.fixture
def limits(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("PTM_URL_TIMEOUT", "0.5")
    monkeypatch.setenv("PTM_URL_MAX_BYTES", "1000000")


def refused(url: str) -> tuple[str, float]:
    began = time.monotonic()
    with pytest.raises(InputError) as caught:
        read_url(url)
    message = caught.value.message
    assert message.startswith(url + ": ") and "\n" not in message
    return message[len(url) + 2:], time.monotonic() - began


def test_an_image_and_a_redirect_to_it(server, limits):
    assert read_url(server.url + "/img.png").data == server.png
    assert read_url(server.url + "/to-img").data == server.png
    assert read_url(server.url + "/chain/4").data == server.png  # 5 redirects: the limit


def test_a_two_gigabyte_body_costs_the_byte_cap(server, limits):
    why, _ = refused(server.url + "/huge")
    assert why == "2,147,483,648 bytes, more than the 1,000,000 allowed (PTM_URL_MAX_BYTES)"
    why, took = refused(server.url + "/endless")
    assert why == "more than 1,000,000 bytes (PTM_URL_MAX_BYTES); stopped reading"
    assert took < 5
    time.sleep(0.2)
    # What the server got into the socket before the client hung up: the cap plus kernel buffers.
    assert server.sent["/endless"] < 1_000_000 + (16 << 20)


def test_stalls_cost_the_timeout(server, limits):
    why, took = refused(server.url + "/stall")
    assert why == "no answer within 0.5 s (PTM_URL_TIMEOUT)" and took < 3
    why, took = refused(server.url + "/stall-body")
    assert why == "no data for 0.5 s (PTM_URL_TIMEOUT); stopped" and took < 3
    # A byte every 0.1 s never trips the per-read timeout; the whole download is bounded too.
    why, took = refused(server.url + "/drip")
    assert why == "download took longer than 5 s (10 x PTM_URL_TIMEOUT); stopped" and 5 <= took < 8


@pytest.mark.parametrize(("path", "reason"), [
    ("/to-file", "redirected to a file: URL; only http and https are followed"),
    ("/to-ftp", "redirected to a ftp: URL; only http and https are followed"),
    ("/loop", "more than 5 redirects"),
    ("/chain/5", "more than 5 redirects"),
    ("/missing", "HTTP 404 Not Found"),
])
def test_refused(server, limits, path, reason):
    assert refused(server.url + path)[0] == reason


def test_nothing_listens(limits):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    why, _ = refused(f"http://127.0.0.1:{port}/x.jpg")
    assert why.startswith("cannot connect (") and "refused" in why.lower()


def test_collect_keeps_urls_as_given_and_refuses_other_schemes():
    inputs = collect(["http://127.0.0.1:9/a.jpg?x=1", "ftp://127.0.0.1/b.jpg", "file:///etc/passwd"])
    assert [(e.item.path, e.item.error, e.key) for e in inputs] == [
        ("http://127.0.0.1:9/a.jpg?x=1", None, "http://127.0.0.1:9/a.jpg?x=1"),
        ("ftp://127.0.0.1/b.jpg", URL_SCHEMES_ONLY, "ftp://127.0.0.1/b.jpg"),
        ("file:///etc/passwd", URL_SCHEMES_ONLY, "file:///etc/passwd"),
    ]
    assert collect(["https://127.0.0.1:9/a.jpg"], offline=True)[0].item.error == URL_OFFLINE


def test_zebrafy_names_outputs_after_the_url_path():
    from pathlib import Path

    from ptmcli.sinks.images import source_name

    assert source_name("http://127.0.0.1/a/b/horse%20one.jpg?size=2") == Path("horse one.jpg")
    assert source_name("http://127.0.0.1/x/..%2F..%2Fetc%2Fpasswd") == Path("_.._etc_passwd")
    assert source_name("http://127.0.0.1/") == Path("download")


def test_classify_urls_through_the_cli(server, run_ptm, tmp_path, make_image):
    local = make_image("local.png")
    urls = [server.url + p for p in ("/img.png", "/noext", "/page.jpg", "/missing", "/to-file")]
    env = {"PTM_OFFLINE": "0", "PTM_URL_TIMEOUT": "2", "no_proxy": "127.0.0.1",
           **{name: "" for name in PROXY_VARS}}
    done = run_ptm("classify", urls[0], "-", local, "--model", "efficientnet_lite0", "--format", "jsonl",
                   "--with-errors", input="\n".join(urls[1:]) + "\n", env=env)
    assert done.returncode == 1, done.stderr
    import json

    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["path"], r["status"]) for r in rows] == [
        (urls[0], "ok"), (urls[1], "ok"), (urls[2], "error"), (urls[3], "error"), (urls[4], "error"),
        (str(local), "ok")]
    assert rows[0]["predictions"] == rows[1]["predictions"]
    assert done.stderr.splitlines() == [
        f"ptm: {urls[2]}: not an image Pillow can read (the server sent image/jpeg)",
        f"ptm: {urls[3]}: HTTP 404 Not Found",
        f"ptm: {urls[4]}: redirected to a file: URL; only http and https are followed",
    ]

    # Offline: every URL is refused in one line each, nothing is requested, local files still run.
    before = len(server.requests)
    done = run_ptm("classify", urls[0], local, "--model", "efficientnet_lite0", "--offline", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"ptm: {urls[0]}: {URL_OFFLINE}"]
    assert str(local) in done.stdout
    assert len(server.requests) == before
