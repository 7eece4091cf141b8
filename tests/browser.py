"""Headless Chromium for report tests: the DOM after scripts ran, screenshots, and a proxy that
records every request the browser tries to send off the machine. The proxy answers nothing and
forwards nothing, so no request reaches any address but 127.0.0.1.

Chromium contacts its own services whatever page it shows (component updates, sign-in), even with
--disable-background-networking; those hosts are set apart, and `test_the_proxy_sees_page_requests`
shows that a page's own request is caught.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync"]


BROWSER_SERVICES = ("update.googleapis.com", "accounts.google.com", "clients2.google.com")


def host_of(request: bytes) -> str:
    """The host a proxied request is for (`CONNECT host:443` or `GET http://host/...`)."""
    words = request.split(b" ", 2)
    if len(words) < 2:
        return ""
    target = words[1].decode("latin-1")
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].rsplit(":", 1)[0]


def page_requests(seen: list[bytes]) -> list[str]:
    return [host_of(r) for r in seen if host_of(r) not in BROWSER_SERVICES]


def chromium() -> str:
    """The browser, or skip saying why (CI installs Debian's chromium with apt)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            probe = subprocess.run([found, *FLAGS, "--version"], capture_output=True, text=True, timeout=60)
            if probe.returncode == 0:
                return found
            pytest.skip(f"{found} cannot start: {probe.stderr.strip()[:200]}")
    pytest.skip("no chromium on this machine (apt-get install -y chromium)")


@contextmanager
def counting_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A proxy on 127.0.0.1 that answers nothing and records the first bytes of every connection."""
    seen: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(200))
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(2)
        server.close()


def _run(page: Path, profile: Path, proxy_port: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{proxy_port}",
         "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=3000", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)


def render(page: Path, tmp: Path, screenshot: Path | None = None, size: str = "1100,900") -> tuple[str, list[str]]:
    """(the DOM after load, the hosts the page tried to reach) for `page`, opened from disk; and,
    when asked, a screenshot."""
    with counting_proxy() as (port, seen):
        dom = _run(page, tmp / "profile-dom", port, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        if screenshot is not None:
            shot = _run(page, tmp / "profile-shot", port, f"--screenshot={screenshot}", f"--window-size={size}",
                        "--hide-scrollbars")
            assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    return dom.stdout, page_requests(seen)
