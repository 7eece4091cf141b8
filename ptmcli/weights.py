"""Find, fetch, verify and load weight files: the one search order ptm uses everywhere.

Search order for a known file (first hit wins):
  1. --weights FILE (used as given; never hash-checked against the published file)
  2. $PTM_WEIGHTS_DIR
  3. the repository's weights/ folder (a source checkout)
  4. the user cache: $XDG_CACHE_HOME/ptm/weights (default ~/.cache/ptm/weights)
  5. torchvision's cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)
  6. inside the installed Python package that ships it (efficientnet_lite0)
Downloads go to torchvision's cache, so ptm and torchvision share one copy.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.errors import DownloadFailed, WeightsInvalid, WeightsNotFound
from ptmcli.registry import WeightFile, package_file_path

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
    folder = Path(__file__).resolve().parent.parent / "weights"
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


def hash_matches(digest: str, weight: WeightFile) -> bool | None:
    """True/False against the published hash; None when nothing is published to check."""
    expected = weight.expected_hash()
    if not expected:
        return None
    return digest.startswith(expected.lower())


def verify(path: Path, weight: WeightFile) -> None:
    """Refuse a file that does not match its published hash (torch.hub checks only at download)."""
    if not weight.expected_hash():
        return
    digest = file_sha256(path)
    if not hash_matches(digest, weight):
        raise WeightsInvalid(
            f"weights file {path} is damaged or not the published {weight.filename} "
            f"(sha256 {digest[:16]}..., expected {weight.expected_hash()[:16]}...)",
            [f"delete it and run again online, or `ptm weights fetch {weight.name}`"],
        )


# --- locating, with the network only when allowed -------------------------------------------

def not_found(weight: WeightFile, offline: bool, reason: str = "") -> WeightsNotFound:
    searched = [f"{label}: {folder}" for label, folder in search_locations(weight)]
    hints = ["searched " + "; ".join(searched)]
    if offline:
        hints.append("offline (--offline or PTM_OFFLINE=1), so nothing was downloaded")
    elif reason:
        hints.append(f"download failed: {reason}")
    ways = ["pass a local copy with --weights FILE"]
    if weight.url:
        ways.append(f"run once online to download {weight.url}")
    if weight.install_hint.startswith("pip "):
        ways.append(weight.install_hint)
    if weight.name != "efficientnet_lite0" and not weight.name.startswith("horse2zebra"):
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
        verify(found, weight)
        return found
    if offline or not weight.url:
        raise not_found(weight, offline)
    destination = torch_hub_checkpoints() / weight.filename
    try:
        return download(weight.url, destination, weight, progress=progress)
    except DownloadFailed as exc:
        raise not_found(weight, offline, exc.message) from None


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
            if hash_matches(digest.hexdigest(), weight) is False:
                raise DownloadFailed(
                    f"sha256 {digest.hexdigest()[:16]}... does not match the published "
                    f"{weight.expected_hash()[:16]}..."
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
        try:
            state = torch.load(path, mmap=True, **kwargs)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            state = torch.load(path, **kwargs)  # legacy (pre-1.6) format cannot be mapped
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsInvalid(
            f"weights file {path} was refused: it holds more than tensors ({first[:160]})",
            ["ptm loads only plain state dicts (torch.load weights_only=True); "
             "re-save the file with torch.save(model.state_dict(), path)"],
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsInvalid(
            f"weights file {path} is not a readable PyTorch file ({str(exc).splitlines()[0][:160]})",
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


def check_keys(model: "torch.nn.Module", state: dict, path: Path, model_name: str) -> None:
    """Refuse a state dict of another layout, naming the keys that do not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
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
        ["pass the weights of this model, or pick the model they belong to with --model"],
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
