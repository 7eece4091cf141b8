"""Digests of weight (and exported) files, remembered by size and mtime so a 170 MB file is hashed
once, not on every run; and the pins: the SHA-256 ptm saw first for files whose publisher gives none."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ptmcli.atomic import replacing
from ptmcli.models.spec import WeightFile

_CHUNK = 1 << 20


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


# --- hashing, with a memo so a 170 MB file is hashed once, not on every run ---------------

SHA256 = "sha256"
GIT_BLOB = "git_blob_sha1"  # what `git hash-object` prints: SHA-1 of b"blob <size>\0" + content


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1_of(path: Path) -> str:
    """The id git gives the file's content as a blob (`git hash-object FILE`)."""
    with open(path, "rb") as handle:
        digest = hashlib.sha1(b"blob %d\0" % os.fstat(handle.fileno()).st_size)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_HASHERS = {SHA256: sha256_of, GIT_BLOB: git_blob_sha1_of}


def _memo_path() -> Path:
    return _cache_home() / "ptm" / "verified.json"


def _read_json_dict(path: Path) -> dict:
    """A JSON object kept in the cache, or {} when it is missing, damaged or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_memo() -> dict:
    return _read_json_dict(_memo_path())


def _write_memo(memo: dict) -> None:
    try:
        atomic_write_bytes(_memo_path(), json.dumps(memo, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def _fresh_entry(memo: dict, path: Path, stat: os.stat_result) -> dict | None:
    entry = memo.get(str(path.resolve()))
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry
    return None


def file_digest(path: Path, kind: str = SHA256, reread: bool = False) -> str:
    """`kind` (SHA256 or GIT_BLOB) of `path`, remembered by (size, mtime) so an unchanged file is
    read once; `reread` ignores (and refreshes) what was remembered."""
    stat = path.stat()
    memo = _read_memo()
    entry = None if reread else _fresh_entry(memo, path, stat)
    if entry is not None and kind in entry:
        return entry[kind]
    digest = _HASHERS[kind](path)
    entry = entry or {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    entry[kind] = digest
    memo[str(path.resolve())] = entry
    _write_memo(memo)
    return digest


def file_sha256(path: Path) -> str:
    """SHA-256 of `path`, remembered by (size, mtime) so unchanged files are not re-read."""
    return file_digest(path, SHA256)


def remember_sha256(digests: dict[Path, str]) -> None:
    """Record the SHA-256 of files ptm itself just wrote and hashed (under another name, before a
    rename), so the next run need not read them again."""
    memo = _read_memo()
    for path, digest in digests.items():
        stat = path.stat()
        memo[str(path.resolve())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, SHA256: digest}
    _write_memo(memo)


def remembered_digest(path: Path, kind: str = SHA256) -> str | None:
    """The memo's digest for `path` if the file is unchanged since it was hashed; never reads it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    entry = _fresh_entry(_read_memo(), path, stat)
    return entry.get(kind) if entry else None


# --- pins: the SHA-256 ptm saw for files whose publisher gives none ------------------------------

def _pins_path() -> Path:
    return _cache_home() / "ptm" / "pinned.json"


def _read_pins() -> dict:
    return _read_json_dict(_pins_path())


def pinned_sha256(weight: WeightFile) -> str | None:
    entry = _read_pins().get(weight.filename)
    return entry.get("sha256") if isinstance(entry, dict) else None


def pin(weight: WeightFile, digest: str, size: int, origin: str) -> None:
    """Remember `digest` as the one acceptable content of `weight` (trust on first use)."""
    pins = _read_pins()
    pins[weight.filename] = {"name": weight.name, "sha256": digest, "size": size, "origin": origin,
                             "pinned": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_bytes(_pins_path(), json.dumps(pins, indent=1, sort_keys=True).encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_bytes(data)
