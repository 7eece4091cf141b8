"""Find, fetch and verify weight files: the one search order ptm uses everywhere.

Search order for a known file (first hit wins):
  1. --weights FILE (used as given; never hash-checked against the published file)
  2. $PTM_WEIGHTS_DIR
  3. the repository's weights/ folder (a source checkout)
  4. the user cache: $XDG_CACHE_HOME/ptm/weights (default ~/.cache/ptm/weights)
  5. torchvision's cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)
  6. inside the installed Python package that ships it (efficientnet_lite0)
Downloads of torchvision's files go to torchvision's cache, so ptm and torchvision share one copy;
other downloads, and files brought with `ptm weights add`, go to the user cache.

A copy is good when it passes any one published check: its SHA-256 (full, or the prefix
torchvision puts in its file names), or the git blob id of a repository that holds it (the book's
horse2zebra_0.4.0.pth). Digests are remembered by size and mtime (`verified.json`), so an
unchanged file is read once.

A file with no published checksum (the CycleGAN project's horse2zebra.pth) is downloaded only when
asked explicitly; ptm then pins the SHA-256 it received (`pinned.json` beside the verified memo) and
checks every later load against it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ptmcli.atomic import replacing
from ptmcli.downloads import open_url
from ptmcli.errors import DownloadFailed, OutputExists, WeightsInvalid, WeightsNotFound
from ptmcli.models.digests import (  # noqa: F401 - re-exported: callers find every weight-file job here
    _HASHERS,
    GIT_BLOB,
    SHA256,
    _cache_home,
    atomic_write_bytes,
    file_digest,
    file_sha256,
    git_blob_sha1_of,
    pin,
    pinned_sha256,
    remember_sha256,
    remembered_digest,
    sha256_of,
)
from ptmcli.models.registry import WeightFile, known_weight_files, offline_alternative, package_file_path

_CHUNK = 1 << 20


def offline_requested(flag: bool = False) -> bool:
    return flag or os.environ.get("PTM_OFFLINE", "") not in ("", "0", "false", "no")


def user_cache_dir() -> Path:
    return _cache_home() / "ptm" / "weights"


def torch_hub_checkpoints() -> Path:
    # torch.hub.get_dir() without importing torch: $TORCH_HOME, else $XDG_CACHE_HOME/torch.
    torch_home = os.environ.get("TORCH_HOME") or str(_cache_home() / "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def repo_weights_dir() -> Path | None:
    folder = Path(__file__).resolve().parents[2] / "weights"
    return folder if folder.is_dir() else None


def search_locations(weight: WeightFile | None = None) -> list[tuple[str, Path]]:
    """(label, folder-or-file) in search order; `--weights` is handled by the caller."""
    places: list[tuple[str, Path]] = []
    if os.environ.get("PTM_WEIGHTS_DIR"):
        places.append(("$PTM_WEIGHTS_DIR", Path(os.environ["PTM_WEIGHTS_DIR"])))
    repo = repo_weights_dir()
    if repo is not None:
        places.append(("repository weights/", repo))
    places.append(("user cache", user_cache_dir()))
    places.append(("torchvision cache", torch_hub_checkpoints()))
    if weight is not None and weight.package_file is not None:
        shipped = package_file_path(weight)
        if shipped:
            places.append((f"package {weight.package_file[0]}", Path(shipped).parent))
    return places


def search_order() -> list[tuple[str, str]]:
    """The whole search order as (label, place) for people: what `ptm weights list` prints."""
    order = [("--weights FILE", "the file named on the command line, used as given")]
    env = os.environ.get("PTM_WEIGHTS_DIR")
    order.append(("$PTM_WEIGHTS_DIR", env if env else "(not set)"))
    repo = repo_weights_dir()
    order.append(("repository weights/", str(repo) if repo else "(not a source checkout)"))
    order.append(("user cache", str(user_cache_dir())))
    order.append(("torchvision cache", str(torch_hub_checkpoints())))
    shipped = ", ".join(w.name for w in known_weight_files() if w.ships_with_ptm)
    order.append(("installed package", f"the Python package that ships the file ({shipped})"))
    return order


def download_destination(weight: WeightFile) -> Path:
    """torchvision's own files go where torchvision would put them; everything else to the user cache."""
    if weight.url and weight.url.startswith("https://download.pytorch.org/"):
        return torch_hub_checkpoints() / weight.filename
    return user_cache_dir() / weight.filename


def find(weight: WeightFile) -> Path | None:
    for _, folder in search_locations(weight):
        candidate = folder / weight.filename
        if candidate.is_file():
            return candidate
    return None


# --- checks: a copy is good when it passes any one of them ---------------------------------------

@dataclass(frozen=True)
class Check:
    """One way a copy can be recognised: `label` for people, `kind` of digest, the `expected` value
    (a prefix for torchvision's file-name hashes)."""

    label: str  # "sha256", "sha256 prefix", "git blob id" or "pinned"
    kind: str
    expected: str

    def passes(self, digest: str) -> bool:
        return digest.startswith(self.expected)

    @property
    def title(self) -> str:
        """For sentences: "SHA-256", "SHA-256 prefix", "git blob id", "pinned SHA-256"."""
        return {"sha256": "SHA-256", "sha256 prefix": "SHA-256 prefix", "pinned": "pinned SHA-256"}.get(
            self.label, self.label)


def checks_of(weight: WeightFile) -> list[Check]:
    """The published checks of `weight` (any one suffices), else its pin, else none."""
    checks = []
    if weight.sha256:
        checks.append(Check("sha256", SHA256, weight.sha256.lower()))
    elif weight.sha256_prefix:
        checks.append(Check("sha256 prefix", SHA256, weight.sha256_prefix.lower()))
    if weight.git_blob_sha1:
        checks.append(Check("git blob id", GIT_BLOB, weight.git_blob_sha1.lower()))
    if not checks:
        pinned = pinned_sha256(weight)
        if pinned:
            checks.append(Check("pinned", SHA256, pinned.lower()))
    return checks


@dataclass(frozen=True)
class Verdict:
    """What a copy's digests say: the check it `passed` (None if none did), the checks there were,
    and the digests computed (kind -> hex), which are all that was needed to decide."""

    passed: Check | None
    checks: tuple[Check, ...]
    digests: dict

    @property
    def ok(self) -> bool:
        return self.passed is not None or not self.checks

    def describe(self) -> str:
        """'sha256 0123..., expected abcd...; git blob id ...' for an error message."""
        parts = []
        for check in self.checks:
            found = self.digests.get(check.kind)
            name = "sha256" if check.label == "pinned" else check.label
            parts.append(f"{name} {found[:16] + '...' if found else 'not computed'}, "
                         f"{'pinned' if check.label == 'pinned' else 'expected'} {check.expected[:16]}...")
        return "; ".join(parts)


def judge(weight: WeightFile, digest_of: Callable[[str], str | None]) -> Verdict:
    """Try each check in turn, asking `digest_of(kind)` only for the digests a check needs (None:
    unknown), so a file that passes its SHA-256 is never read for its git blob id."""
    checks = tuple(checks_of(weight))
    digests: dict = {}
    for check in checks:
        if check.kind not in digests:
            digests[check.kind] = digest_of(check.kind)
        if digests[check.kind] is not None and check.passes(digests[check.kind]):
            return Verdict(check, checks, digests)
    return Verdict(None, checks, digests)


def verify(path: Path, weight: WeightFile) -> str | None:
    """Refuse a file that passes none of its checks (torch.hub checks only at download); return
    the check it passed ("sha256", "sha256 prefix", "git blob id", "pinned"), None if there are none."""
    verdict = judge(weight, lambda kind: file_digest(path, kind))
    if verdict.ok:
        return verdict.passed.label if verdict.passed else None
    if weight.published:
        raise WeightsInvalid(
            f"weights file {path} is damaged or not the published {weight.filename} ({verdict.describe()})",
            [f"delete it and run again online, or `ptm weights fetch {weight.name} --force`"],
        )
    raise WeightsInvalid(
        f"weights file {path} changed since ptm first accepted {weight.filename} ({verdict.describe()})",
        [f"if you replaced it on purpose: `ptm weights add {weight.name} FILE --force` pins the new copy",
         f"otherwise delete it and `ptm weights fetch {weight.name} --allow-unverified --force`"],
    )


@dataclass(frozen=True)
class WeightState:
    """Where a known file is and what ptm knows about its content, for `ptm weights list/verify`."""

    weight: WeightFile
    path: Path | None
    # "verified (sha256)" | "verified (sha256 prefix)" | "verified (git blob id)" | pinned | mismatch
    # | unchecked (present, not hashed yet) | no published hash | missing
    check: str
    sha256: str | None = None
    git_blob_sha1: str | None = None
    verdict: Verdict | None = None  # what the checks said, when a digest was known


def state_of(weight: WeightFile, reread: bool = False) -> WeightState:
    """Present or not, and verified or not; hashes only with `reread` (a listing stays instant)."""
    path = find(weight)
    if path is None:
        return WeightState(weight, None, "missing")
    # Each digest read at most once here, even where the memo cannot be written (a read-only cache).
    known: dict = {SHA256: file_digest(path, SHA256, reread=True)} if reread else {}

    def digest_of(kind: str) -> str | None:
        if kind not in known:
            known[kind] = file_digest(path, kind) if reread else remembered_digest(path, kind)
        return known[kind]

    verdict = judge(weight, digest_of)
    sha256 = digest_of(SHA256)
    blob = known.get(GIT_BLOB) or (None if reread else remembered_digest(path, GIT_BLOB))

    def state(check: str) -> WeightState:
        return WeightState(weight, path, check, sha256, blob, verdict)

    if not verdict.checks:
        return state("no published hash" if sha256 else "unchecked")
    if verdict.passed is not None:
        return state("pinned" if verdict.passed.label == "pinned" else f"verified ({verdict.passed.label})")
    if any(d is None for d in verdict.digests.values()):
        return state("unchecked")  # not everything that could pass it has been computed yet
    return state("mismatch")


# --- locating, with the network only when allowed -------------------------------------------

def not_found(weight: WeightFile, offline: bool, reason: str = "") -> WeightsNotFound:
    searched = [f"{label}: {folder}" for label, folder in search_locations(weight)]
    hints = ["searched " + "; ".join(searched)]
    if offline:
        hints.append("offline (--offline or PTM_OFFLINE=1), so nothing was downloaded")
    elif reason:
        hints.append(f"download failed: {reason}")
    ways = ["pass a local copy with --weights FILE"]
    if weight.url and weight.published:
        ways.append(f"go online and run `ptm weights fetch {weight.name}` (downloads {weight.url})")
    elif weight.url:
        ways.append(f"`ptm weights fetch {weight.name} --allow-unverified` (downloads {weight.url}, "
                    "which has no published checksum)")
    ways.append(f"copy in a file you have with `ptm weights add {weight.name} FILE`")
    if weight.install_hint.startswith("pip "):
        ways.append(weight.install_hint)
    alternative = offline_alternative(weight)
    if alternative:
        ways.append(f"or use --model {alternative}, whose weights install with ptm")
    hints.append("fix: " + "; ".join(ways))
    return WeightsNotFound(f"no weights for {weight.name} ({weight.filename}) on this machine", hints)


def resolve(
    weight: WeightFile,
    explicit: str | Path | None = None,
    offline: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """The path of a verified copy of `weight`, downloading it only when online and missing."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsNotFound(f"weights file {path} does not exist", ["check the --weights path"])
        return path
    found = find(weight)
    if found is not None:
        if not checks_of(weight):
            # A file placed by hand with no published hash: trust it now, and only this content later.
            try:
                pin(weight, file_sha256(found), found.stat().st_size, f"first found at {found}")
            except OSError:
                pass  # a read-only cache: nothing to pin against, the file is still usable
        verify(found, weight)
        return found
    if offline or not weight.url:
        raise not_found(weight, offline)
    if not weight.published:
        raise unverified_refused(weight)
    try:
        return fetch(weight, progress=progress)
    except DownloadFailed as exc:
        raise not_found(weight, offline, exc.message) from None


def unverified_refused(weight: WeightFile) -> WeightsNotFound:
    return WeightsNotFound(
        f"no weights for {weight.name} ({weight.filename}) on this machine, and its publisher gives no "
        "checksum, so ptm does not download it on its own",
        [f"download it knowingly: `ptm weights fetch {weight.name} --allow-unverified` "
         "(ptm pins the SHA-256 it receives and checks it on every later load)",
         f"or copy in a file you have: `ptm weights add {weight.name} FILE`, or pass --weights FILE"],
    )


def fetch(
    weight: WeightFile,
    allow_unverified: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download `weight` to its cache folder and check it; pin the hash of an unpublished one."""
    if not weight.url:
        raise not_found(weight, offline=False)
    if not weight.published and not allow_unverified:
        raise unverified_refused(weight)
    destination = download(weight.url, download_destination(weight), weight, progress=progress)
    if not weight.published:
        pin(weight, file_sha256(destination), destination.stat().st_size, weight.url)
    return destination


def download(
    url: str,
    destination: Path,
    weight: WeightFile | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Stream `url` to `destination.part`, check it against `weight`'s published digests, then
    rename it into place.

    A failed or interrupted transfer leaves no file under the final name.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    received = 0
    try:
        with open_url(url, timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            with open(partial, "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if progress:
                        progress(received, total)
        if total is not None and received != total:
            raise DownloadFailed(f"transfer cut off at {received:,} of {total:,} bytes")
        if weight is not None and weight.published:
            streamed = digest.hexdigest()
            verdict = judge(weight, lambda kind: streamed if kind == SHA256 else _HASHERS[kind](partial))
            if not verdict.ok:
                raise DownloadFailed(f"does not match the published {weight.filename} "
                                     f"({verdict.describe()}{_size_note(weight, received)})")
        os.replace(partial, destination)
    except urllib.error.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadFailed(f"{url}: {reason}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return destination


def add_file(
    weight: WeightFile,
    source: Path,
    force: bool = False,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Copy a file the user brought into the user cache under its known name, once it checks out.

    A file with a published hash must match it. One without must pass `check` (for example, load
    into its network), and its hash is pinned. The copy is atomic: a temp file, then a rename.
    """
    if not source.is_file():
        raise WeightsNotFound(f"{source} is not a file", ["name the weight file to add"])
    digest = file_digest(source, reread=True)
    published = weight.published
    if published:
        verdict = judge(weight, lambda kind: file_digest(source, kind))
        if not verdict.ok:
            raise WeightsInvalid(
                f"{source} is not the published {weight.filename} "
                f"({verdict.describe()}{_size_note(weight, source.stat().st_size)})",
                [f"`ptm weights fetch {weight.name}` downloads the published file"],
            )
    if check is not None:
        check(source)
    destination = user_cache_dir() / weight.filename
    if destination.is_file():
        if file_digest(destination, reread=True) == digest:
            if not published:
                pin(weight, digest, source.stat().st_size, f"ptm weights add {source}")
            return destination
        if not force:
            raise OutputExists(
                f"{destination} exists and holds another copy of {weight.filename}",
                ["pass --force to replace it"],
            )
    atomic_copy(source, destination)
    file_sha256(destination)  # remember it, so the next load need not re-read it
    if not published:
        pin(weight, digest, source.stat().st_size, f"ptm weights add {source}")
    return destination


def _size_note(weight: WeightFile, size: int) -> str:
    # Size alone decides nothing (a git blob id match accepts a copy whatever size is recorded),
    # but says at once whether the transfer or the file is cut short.
    if weight.size is None or size == weight.size:
        return ""
    return f"; {size:,} bytes, expected {weight.size:,}"


def atomic_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with replacing(destination) as tmp:
        with open(tmp, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
