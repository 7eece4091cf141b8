"""HTTP(S) transfers with bounds: the one way ptm reads from the network. Torch-free.

Used for weight files (models/weights.py) and for image URLs given as inputs (`read_url`). Only
http:// and https:// are opened or followed: urllib would also follow a redirect to ftp://, and
open file:// and data: URLs, which lets a server point ptm at local files. Redirects are bounded,
every wait for the network is bounded by a timeout, and `read_url` also bounds the whole transfer
in time and in bytes, so a stalled server or an endless body costs at most those limits.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from ptmcli import __version__
from ptmcli.errors import InputError

SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
# Larger than any photo worth classifying (a 100-megapixel JPEG is about 30 MB); the pixel limit
# (PTM_MAX_PIXELS) still applies after decoding.
DEFAULT_MAX_BYTES = 64 << 20
# Seconds to connect, and for any one wait for data; the whole download gets TOTAL_FACTOR times that.
DEFAULT_TIMEOUT = 30.0
TOTAL_FACTOR = 10
_CHUNK = 1 << 16
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(text: str) -> str | None:
    """The scheme of `text` when it is written as a URL (`scheme://...`), lower-cased; else None."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_url(text: str) -> bool:
    return url_scheme(text) is not None


def _positive_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def max_bytes() -> int:
    return int(_positive_env("PTM_URL_MAX_BYTES", DEFAULT_MAX_BYTES))


def timeout() -> float:
    return _positive_env("PTM_URL_TIMEOUT", DEFAULT_TIMEOUT)


class RedirectRefused(urllib.error.URLError):
    """A redirect ptm does not follow: to another scheme, or one too many."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = max_repeats = MAX_REDIRECTS

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("location") or headers.get("uri")
        if target:
            # Checked before urllib's own check, which lets ftp:// through.
            scheme = urlsplit(urljoin(req.full_url, target)).scheme.lower()
            if scheme not in SCHEMES:
                fp.close()
                raise RedirectRefused(f"redirected to a {scheme}: URL; only http and https are followed")
        visited = getattr(req, "redirect_dict", {})
        if len(visited) >= self.max_redirections or sum(visited.values()) >= self.max_redirections:
            fp.close()
            raise RedirectRefused(f"more than {self.max_redirections} redirects")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener() -> urllib.request.OpenerDirector:
    # build_opener replaces the default redirect handler with our subclass; file:, ftp: and data:
    # handlers stay installed, so open_url checks the scheme itself before opening anything.
    opener = urllib.request.build_opener(_Redirects)
    opener.addheaders = [("User-Agent", f"ptm/{__version__}"), ("Accept", "*/*")]
    return opener


def open_url(url: str, wait: float) -> http.client.HTTPResponse:
    """Open an http(s) URL, following at most MAX_REDIRECTS redirects, all of them to http(s).

    `wait` bounds connecting and each later wait for data. Raises urllib's errors (HTTPError,
    URLError, RedirectRefused) and OSError.
    """
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        raise RedirectRefused(f"not an http:// or https:// URL ({scheme or 'no scheme'})")
    return _opener().open(url, timeout=wait)


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str


def read_url(url: str) -> Downloaded:
    """The whole body of `url` in memory, within the byte cap and the time limits; InputError
    (one line, naming the URL as given) otherwise."""
    cap, wait = max_bytes(), timeout()
    deadline = time.monotonic() + TOTAL_FACTOR * wait
    try:
        try:
            response = open_url(url, wait)
        except (TimeoutError, socket.timeout):
            raise InputError(f"{url}: no answer within {wait:g} s (PTM_URL_TIMEOUT)") from None
        with response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > cap:
                raise InputError(f"{url}: {int(length):,} bytes, more than the {cap:,} allowed "
                                 "(PTM_URL_MAX_BYTES)")
            body = bytearray()
            # read1: one network read at a time, so a server that drips bytes meets the deadline.
            while chunk := response.read1(_CHUNK):
                body += chunk
                if len(body) > cap:
                    raise InputError(f"{url}: more than {cap:,} bytes (PTM_URL_MAX_BYTES); stopped reading")
                if time.monotonic() > deadline:
                    raise InputError(f"{url}: download took longer than {TOTAL_FACTOR * wait:g} s "
                                     "(10 x PTM_URL_TIMEOUT); stopped")
            if length.isdigit() and len(body) < int(length):
                raise InputError(f"{url}: transfer cut off at {len(body):,} of {int(length):,} bytes")
            return Downloaded(bytes(body), response.headers.get_content_type())
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except RedirectRefused as exc:
        raise InputError(f"{url}: {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise InputError(f"{url}: no answer within {wait:g} s (PTM_URL_TIMEOUT)") from None
        raise InputError(f"{url}: cannot connect ({getattr(reason, 'strerror', None) or reason})") from None
    except (TimeoutError, socket.timeout):
        raise InputError(f"{url}: no data for {wait:g} s (PTM_URL_TIMEOUT); stopped") from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise InputError(f"{url}: download failed ({type(exc).__name__}: {exc})") from None


# --- inputs that are URLs: fetched once, kept a while for whoever reads them again ---------

class Fetched(io.BytesIO):
    """A URL's body, read once, with what the server said it was (for error messages only)."""

    def __init__(self, data: bytes, content_type: str):
        super().__init__(data)
        self.content_type = content_type


# Downloads kept after decoding, newest last, when something reads the inputs again (a report's
# thumbnails); bounded in bytes. The decode threads run a few batches ahead of the sinks, so the
# bound holds many batches of photos.
_recent: OrderedDict[str, Downloaded] = OrderedDict()
_recent_lock = threading.Lock()
_recent_budget = [0]
_recent_bytes = [0]  # kept as a running total: summing every body on each download is quadratic


def keep_recent_downloads(budget: int = 256 << 20) -> None:
    _recent_budget[0] = budget


def _fetch(url: str) -> Downloaded:
    with _recent_lock:
        if url in _recent:
            _recent.move_to_end(url)
            return _recent[url]
    download = read_url(url)
    if _recent_budget[0]:
        with _recent_lock:
            if url not in _recent:  # another decode thread may have fetched it meanwhile
                _recent[url] = download
                _recent_bytes[0] += len(download.data)
            while _recent_bytes[0] > _recent_budget[0]:
                _, dropped = _recent.popitem(last=False)
                _recent_bytes[0] -= len(dropped.data)
    return download


def input_source(path: str) -> "str | BinaryIO":
    """What Pillow opens for an input: the path of a file, or the downloaded bytes of a URL.

    Open it once per input and pass it to `open_image(source=...)`, so a URL is fetched once.
    """
    if is_url(path):
        download = _fetch(path)
        return Fetched(download.data, download.content_type)
    return path
