"""Find, fetch, verify and load weight files: the one search order ptm uses everywhere.

Search order for a known file (first hit wins):
  1. --weights FILE (used as given; never hash-checked against the published file)
  2. $PTM_WEIGHTS_DIR
  3. the repository's weights/ folder (a source checkout)
  4. the user cache: $XDG_CACHE_HOME/ptm/weights (default ~/.cache/ptm/weights)
  5. torchvision's cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)
  6. inside the installed Python package that ships it (efficientnet_lite0)
Downloads of torchvision's files go to torchvision's cache, so ptm and torchvision share one copy;
other downloads, and files brought with `ptm weights add`, go to the user cache.

A file with no published checksum (the CycleGAN project's horse2zebra.pth) is downloaded only when
asked explicitly; ptm then pins the SHA-256 it received (`pinned.json` beside the verified memo) and
checks every later load against it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.atomic import replacing
from ptmcli.errors import DownloadFailed, OutputExists, WeightsInvalid, WeightsNotFound
from ptmcli.models.registry import GENERATOR_WEIGHTS, WeightFile, package_file_path

if TYPE_CHECKING:
    import torch

_CHUNK = 1 << 20


def offline_requested(flag: bool = False) -> bool:
    return flag or os.environ.get("PTM_OFFLINE", "") not in ("", "0", "false", "no")


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


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
    order.append(("installed package", "the Python package that ships the file (efficientnet_lite0)"))
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


# --- hashing, with a memo so a 170 MB file is hashed once, not on every run ---------------

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _memo_path() -> Path:
    return _cache_home() / "ptm" / "verified.json"


def _read_memo() -> dict:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_memo(memo: dict) -> None:
    try:
        atomic_write_bytes(_memo_path(), json.dumps(memo, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def file_sha256(path: Path) -> str:
    """SHA-256 of `path`, remembered by (size, mtime) so unchanged files are not re-read."""
    stat = path.stat()
    key = str(path.resolve())
    memo = _read_memo()
    entry = memo.get(key)
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    digest = sha256_of(path)
    memo[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    _write_memo(memo)
    return digest


def remembered_sha256(path: Path) -> str | None:
    """The memo's SHA-256 for `path` if the file is unchanged since it was hashed; never reads it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    entry = _read_memo().get(str(path.resolve()))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    return None


def rehash(path: Path) -> str:
    """Read the whole file again, ignoring (and refreshing) the memo."""
    stat = path.stat()
    digest = sha256_of(path)
    memo = _read_memo()
    memo[str(path.resolve())] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    _write_memo(memo)
    return digest


# --- pins: the SHA-256 ptm saw for files whose publisher gives none ------------------------------

def _pins_path() -> Path:
    return _cache_home() / "ptm" / "pinned.json"


def _read_pins() -> dict:
    try:
        pins = json.loads(_pins_path().read_text())
    except (OSError, ValueError):
        return {}
    return pins if isinstance(pins, dict) else {}


def pinned_sha256(weight: WeightFile) -> str | None:
    entry = _read_pins().get(weight.filename)
    return entry.get("sha256") if isinstance(entry, dict) else None


def pin(weight: WeightFile, digest: str, size: int, origin: str) -> None:
    """Remember `digest` as the one acceptable content of `weight` (trust on first use)."""
    pins = _read_pins()
    pins[weight.filename] = {"name": weight.name, "sha256": digest, "size": size, "origin": origin,
                             "pinned": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_bytes(_pins_path(), json.dumps(pins, indent=1, sort_keys=True).encode())


def expected_sha256(weight: WeightFile) -> str | None:
    """The published hash (full or torchvision's prefix), else the pinned one, else None."""
    return weight.expected_hash() or pinned_sha256(weight)


def hash_matches(digest: str, weight: WeightFile) -> bool | None:
    """True/False against the published (or pinned) hash; None when there is nothing to check."""
    expected = expected_sha256(weight)
    if not expected:
        return None
    return digest.startswith(expected.lower())


def verify(path: Path, weight: WeightFile) -> None:
    """Refuse a file that does not match its published hash (torch.hub checks only at download)."""
    expected = expected_sha256(weight)
    if not expected:
        return
    digest = file_sha256(path)
    if not hash_matches(digest, weight):
        if weight.expected_hash():
            raise WeightsInvalid(
                f"weights file {path} is damaged or not the published {weight.filename} "
                f"(sha256 {digest[:16]}..., expected {expected[:16]}...)",
                [f"delete it and run again online, or `ptm weights fetch {weight.name} --force`"],
            )
        raise WeightsInvalid(
            f"weights file {path} changed since ptm first accepted {weight.filename} "
            f"(sha256 {digest[:16]}..., pinned {expected[:16]}...)",
            [f"if you replaced it on purpose: `ptm weights add {weight.name} FILE --force` pins the new copy",
             f"otherwise delete it and `ptm weights fetch {weight.name} --allow-unverified --force`"],
        )


@dataclass(frozen=True)
class WeightState:
    """Where a known file is and what ptm knows about its content, for `ptm weights list/verify`."""

    weight: WeightFile
    path: Path | None
    # verified | pinned | mismatch | unchecked (present, not hashed yet) | no published hash | missing
    check: str
    sha256: str | None = None


def state_of(weight: WeightFile, reread: bool = False) -> WeightState:
    """Present or not, and verified or not; hashes only with `reread` (a listing stays instant)."""
    path = find(weight)
    if path is None:
        return WeightState(weight, None, "missing")
    digest = rehash(path) if reread else remembered_sha256(path)
    if digest is None:
        return WeightState(weight, path, "unchecked")
    verdict = hash_matches(digest, weight)
    if verdict is None:
        return WeightState(weight, path, "no published hash", digest)
    if not verdict:
        return WeightState(weight, path, "mismatch", digest)
    return WeightState(weight, path, "verified" if weight.expected_hash() else "pinned", digest)


# --- locating, with the network only when allowed -------------------------------------------

def not_found(weight: WeightFile, offline: bool, reason: str = "") -> WeightsNotFound:
    searched = [f"{label}: {folder}" for label, folder in search_locations(weight)]
    hints = ["searched " + "; ".join(searched)]
    if offline:
        hints.append("offline (--offline or PTM_OFFLINE=1), so nothing was downloaded")
    elif reason:
        hints.append(f"download failed: {reason}")
    ways = ["pass a local copy with --weights FILE"]
    if weight.url and weight.expected_hash():
        ways.append(f"go online and run `ptm weights fetch {weight.name}` (downloads {weight.url})")
    elif weight.url:
        ways.append(f"`ptm weights fetch {weight.name} --allow-unverified` (downloads {weight.url}, "
                    "which has no published checksum)")
    ways.append(f"copy in a file you have with `ptm weights add {weight.name} FILE`")
    if weight.install_hint.startswith("pip "):
        ways.append(weight.install_hint)
    if weight.name != "efficientnet_lite0" and weight.name not in GENERATOR_WEIGHTS:
        ways.append("or use --model efficientnet_lite0, whose weights install with ptm")
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
        if not expected_sha256(weight):
            # A file placed by hand with no published hash: trust it now, and only this content later.
            try:
                pin(weight, file_sha256(found), found.stat().st_size, f"first found at {found}")
            except OSError:
                pass  # a read-only cache: nothing to pin against, the file is still usable
        verify(found, weight)
        return found
    if offline or not weight.url:
        raise not_found(weight, offline)
    if not weight.expected_hash():
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
    if not weight.expected_hash() and not allow_unverified:
        raise unverified_refused(weight)
    destination = download(weight.url, download_destination(weight), weight, progress=progress)
    if not weight.expected_hash():
        pin(weight, file_sha256(destination), destination.stat().st_size, weight.url)
    return destination


def download(
    url: str,
    destination: Path,
    weight: WeightFile | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Stream `url` to `destination.part`, check size and hash, then rename into place.

    A failed or interrupted transfer leaves no file under the final name.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
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
        if weight is not None:
            if weight.size is not None and received != weight.size:
                raise DownloadFailed(f"got {received:,} bytes, expected {weight.size:,}")
            published = weight.expected_hash()
            if published and not digest.hexdigest().startswith(published.lower()):
                raise DownloadFailed(
                    f"sha256 {digest.hexdigest()[:16]}... does not match the published "
                    f"{published[:16]}..."
                )
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


# --- loading ----------------------------------------------------------------------------------

def load_state_dict(path: Path) -> dict[str, "torch.Tensor"]:
    """torch.load with weights_only=True, memory-mapped where the format allows."""
    import pickle
    import zipfile

    import torch

    kwargs = {"map_location": "cpu", "weights_only": True}
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": noise about a file that is refused anyway.
            warnings.simplefilter("ignore", UserWarning)
            try:
                state = torch.load(path, mmap=True, **kwargs)
            except RuntimeError as exc:
                if "mmap" not in str(exc) and "zip" not in str(exc):
                    raise
                state = torch.load(path, **kwargs)  # legacy (pre-1.6) format cannot be mapped
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # torch names the first thing it would not build ("Unsupported global: GLOBAL posix.system").
        named = next((line for line in lines if "GLOBAL" in line or "global" in line), None)
        if named is None:
            detail = next((line for line in lines if line.startswith("Unsupported")), "not a pickle ptm can read")
            raise WeightsInvalid(
                f"weights file {path} is not a readable PyTorch file ({detail[:160]})",
                ["delete it and download it again, or pass another file with --weights"],
            ) from None
        raise WeightsInvalid(
            f"weights file {path} was refused: it holds more than tensors ({named[:160]})",
            ["ptm loads only plain state dicts (torch.load weights_only=True); "
             "re-save the file with torch.save(model.state_dict(), path)"],
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        # A text or random file dies inside the unpickler with KeyError/IndexError (an unknown opcode).
        reason = (str(exc).splitlines() or [""])[0][:160]
        if isinstance(exc, (KeyError, IndexError)):
            reason = f"{type(exc).__name__} {reason} while unpickling"
        raise WeightsInvalid(
            f"weights file {path} is not a readable PyTorch file ({reason})",
            ["delete it and download it again, or pass another file with --weights"],
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise WeightsInvalid(
            f"weights file {path} does not hold a state dict (name -> tensor)",
            ["save it with torch.save(model.state_dict(), path)"],
        )
    return state


def check_keys(
    model: "torch.nn.Module", state: dict, path: Path, model_name: str, hints: list[str] | None = None
) -> None:
    """Refuse a state dict of another layout, naming the keys that do not fit."""
    expected = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters; BatchNorm's own loader
    # fills them in (torchvision's older ImageNet files, DenseNet's among them, are like that).
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or wrong_shape):
        return

    def some(keys: list[str]) -> str:
        shown = ", ".join(keys[:4])
        return shown + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {some(unexpected)}")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} of another shape: {some(wrong_shape)}")
    raise WeightsInvalid(
        f"weights file {path} does not fit {model_name}: " + "; ".join(parts),
        hints or ["pass the weights of this model, or pick the model they belong to with --model"],
    )


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
    digest = rehash(source)
    published = weight.expected_hash()
    if published and not digest.startswith(published.lower()):
        raise WeightsInvalid(
            f"{source} is not the published {weight.filename} "
            f"(sha256 {digest[:16]}..., expected {published[:16]}...)",
            [f"`ptm weights fetch {weight.name}` downloads the published file"],
        )
    if weight.size is not None and source.stat().st_size != weight.size:
        raise WeightsInvalid(f"{source} has {source.stat().st_size:,} bytes, expected {weight.size:,}")
    if check is not None:
        check(source)
    destination = user_cache_dir() / weight.filename
    if destination.is_file():
        if rehash(destination) == digest:
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


def atomic_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with replacing(destination) as tmp:
        with open(tmp, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_bytes(data)
