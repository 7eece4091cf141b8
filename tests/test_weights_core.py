"""Weight files: the search order, hash checks and their memo, safe loading."""

from __future__ import annotations

import hashlib

import pytest

from ptmcli.errors import WeightsInvalid
from ptmcli.models import checkpoints, weights
from ptmcli.models.registry import WeightFile

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PTM_WEIGHTS_DIR", raising=False)


def spec(url: str, sha256: str | None = None) -> WeightFile:
    return WeightFile(name="demo", filename="demo-1234.pth", url=url, sha256=sha256, size=len(PAYLOAD))


GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_search_order_prefers_ptm_weights_dir(tmp_path, monkeypatch):
    first, later = tmp_path / "first", tmp_path / "torch" / "hub" / "checkpoints"
    for folder in (first, later):
        folder.mkdir(parents=True)
        (folder / "demo-1234.pth").write_bytes(PAYLOAD)
    monkeypatch.setenv("PTM_WEIGHTS_DIR", str(first))
    assert weights.find(spec("")) == first / "demo-1234.pth"
    labels = [label for label, _ in weights.search_locations()]
    assert labels.index("$PTM_WEIGHTS_DIR") < labels.index("user cache") < labels.index("torchvision cache")


def test_damaged_copy_is_refused_even_when_cached(tmp_path):
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "demo-1234.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(WeightsInvalid, match="damaged"):
        weights.resolve(spec("http://127.0.0.1:9/never", GOOD_SHA))


def test_hash_memo_rehashes_after_a_change(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    first = weights.file_sha256(path)
    path.write_bytes(b"two!")
    assert weights.file_sha256(path) != first == hashlib.sha256(b"one").hexdigest()


def test_torchvision_prefix_is_a_hash_check():
    tv = WeightFile(name="x", filename="x-cd907fc2.pth", sha256_prefix="cd907fc2")
    def passed(digest):
        check = weights.judge(tv, lambda kind: digest).passed
        return check.label if check else None

    assert passed("cd907fc2" + "0" * 56) == "sha256 prefix"
    assert passed("00000000" + "0" * 56) is None


def test_load_refuses_non_tensor_content(tmp_path):
    import torch

    path = tmp_path / "odd.pth"
    torch.save({"a": torch.zeros(2), "b": "text"}, path)
    with pytest.raises(WeightsInvalid, match="state dict"):
        checkpoints.load_state_dict(path)


def test_load_reads_legacy_format(tmp_path):
    import torch

    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(4.0)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(checkpoints.load_state_dict(path)["w"], torch.arange(4.0))


# --- git blob ids: the record the book's repository keeps of horse2zebra_0.4.0.pth ---------------

@pytest.mark.parametrize("content", [b"", b"hello\n", PAYLOAD])
def test_git_blob_id_is_what_git_hash_object_prints(tmp_path, content):
    import subprocess

    path = tmp_path / "f.bin"
    path.write_bytes(content)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert weights.git_blob_sha1_of(path) == expected


def counting_hashers(monkeypatch) -> dict:
    counts = {kind: 0 for kind in weights._HASHERS}
    real = dict(weights._HASHERS)

    def counted(kind):
        def run(path):
            counts[kind] += 1
            return real[kind](path)
        return run

    for kind in real:
        monkeypatch.setitem(weights._HASHERS, kind, counted(kind))
    return counts


def test_a_wrong_sha256_with_the_right_blob_id_is_accepted_and_says_so(tmp_path, monkeypatch):
    path = tmp_path / "demo-1234.pth"
    path.write_bytes(PAYLOAD)
    monkeypatch.setenv("PTM_WEIGHTS_DIR", str(tmp_path))
    blob = weights.git_blob_sha1_of(path)
    # As if the Git LFS pointer the SHA-256 and size came from described some other file.
    weight = WeightFile(name="demo", filename="demo-1234.pth", sha256="0" * 64, size=123, git_blob_sha1=blob)
    counts = counting_hashers(monkeypatch)
    assert weights.verify(path, weight) == "git blob id"
    assert weights.verify(path, weight) == "git blob id"
    assert counts == {weights.SHA256: 1, weights.GIT_BLOB: 1}  # hashed once per (size, mtime), as sha256 is
    assert weights.state_of(weight).check == "verified (git blob id)"
    assert weights.state_of(weight, reread=True).check == "verified (git blob id)"

    right_sha = WeightFile(name="demo", filename="demo-1234.pth", sha256=GOOD_SHA, git_blob_sha1="f" * 40)
    assert weights.verify(path, right_sha) == "sha256"
    assert weights.state_of(right_sha).check == "verified (sha256)"


def test_a_copy_matching_neither_digest_is_refused_naming_both(tmp_path):
    path = tmp_path / "demo-1234.pth"
    path.write_bytes(PAYLOAD)
    weight = WeightFile(name="demo", filename="demo-1234.pth", sha256="0" * 64, git_blob_sha1="f" * 40)
    with pytest.raises(WeightsInvalid, match="damaged") as caught:
        weights.verify(path, weight)
    assert f"sha256 {GOOD_SHA[:16]}..., expected 0000000000000000..." in caught.value.message
    assert f"git blob id {weights.git_blob_sha1_of(path)[:16]}..., expected ffffffffffffffff..." in caught.value.message


def test_a_listing_never_reads_a_file_it_has_not_hashed(tmp_path, monkeypatch):
    (tmp_path / "demo-1234.pth").write_bytes(PAYLOAD)
    monkeypatch.setenv("PTM_WEIGHTS_DIR", str(tmp_path))
    weight = WeightFile(name="demo", filename="demo-1234.pth", sha256="0" * 64, git_blob_sha1="f" * 40)
    counts = counting_hashers(monkeypatch)
    assert weights.state_of(weight).check == "unchecked"
    assert counts == {weights.SHA256: 0, weights.GIT_BLOB: 0}
    assert weights.state_of(weight, reread=True).check == "mismatch"
    assert weights.state_of(weight).check == "mismatch"  # both digests now remembered
