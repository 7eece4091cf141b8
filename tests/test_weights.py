"""Fetching, verifying, pinning and adding weight files; downloads against a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
from zebra_helpers import save_generator

from ptmcli.errors import DownloadFailed, OutputExists, WeightsInvalid, WeightsNotFound
from ptmcli.models import weights
from ptmcli.models.registry import TRANSLATE, WeightFile, get_weight_file, known_weight_files, model_names

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several read chunks
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/missing":
            self.send_error(404)
            return
        body = PAYLOAD[::-1] if self.path == "/wrong" else PAYLOAD  # same length, other bytes
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/cut":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])  # then the connection drops
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("PTM_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(weights, "repo_weights_dir", lambda: None)


def published(url: str, **kw) -> WeightFile:
    return WeightFile(name="thing", filename="thing.pth", url=url, sha256=PAYLOAD_SHA256, size=len(PAYLOAD), **kw)


def test_fetch_good_file_to_user_cache_and_find_it(server):
    path = weights.fetch(published(f"{server}/good"))
    assert path == weights.user_cache_dir() / "thing.pth"
    assert path.read_bytes() == PAYLOAD
    assert weights.resolve(published(f"{server}/good"), offline=True) == path
    assert not path.with_name("thing.pth.part").exists()


def test_progress_reports_bytes(server):
    seen = []
    weights.fetch(published(f"{server}/good"), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


@pytest.mark.parametrize("path, reason", [("/wrong", "does not match"), ("/cut", "cut off|IncompleteRead|Remote")])
def test_bad_downloads_leave_nothing(server, path, reason):
    weight = published(f"{server}{path}")
    with pytest.raises(DownloadFailed, match=reason):
        weights.fetch(weight)
    folder = weights.user_cache_dir()
    assert not folder.exists() or list(folder.iterdir()) == []


def test_unreachable_server_offline_hint(server):
    weight = published("http://127.0.0.1:9/nothing-listens-here")
    with pytest.raises(WeightsNotFound) as caught:
        weights.resolve(weight)
    assert "download failed" in " ".join(caught.value.hints)


def test_unpublished_file_needs_the_flag_and_is_pinned(server):
    weight = WeightFile(name="thing", filename="thing.pth", url=f"{server}/good")
    with pytest.raises(WeightsNotFound, match="no checksum") as caught:
        weights.resolve(weight)
    assert "--allow-unverified" in " ".join(caught.value.hints)
    with pytest.raises(WeightsNotFound):
        weights.fetch(weight)

    path = weights.fetch(weight, allow_unverified=True)
    assert weights.pinned_sha256(weight) == PAYLOAD_SHA256
    assert weights.resolve(weight, offline=True) == path
    assert weights.state_of(weight).check == "pinned"

    path.write_bytes(PAYLOAD[::-1])  # someone swapped the file
    with pytest.raises(WeightsInvalid, match="changed since ptm first accepted"):
        weights.resolve(weight, offline=True)
    assert weights.state_of(weight, reread=True).check == "mismatch"


def test_unpublished_file_placed_by_hand_is_pinned_on_first_use(tmp_path):
    weight = WeightFile(name="thing", filename="thing.pth")
    weights.user_cache_dir().mkdir(parents=True)
    (weights.user_cache_dir() / "thing.pth").write_bytes(b"first copy")
    assert weights.state_of(weight, reread=True).check == "no published hash"
    weights.resolve(weight, offline=True)
    assert weights.pinned_sha256(weight) == hashlib.sha256(b"first copy").hexdigest()


def test_published_hash_mismatch_in_cache_is_refused():
    weight = published("http://127.0.0.1:9/x")
    weights.user_cache_dir().mkdir(parents=True)
    (weights.user_cache_dir() / "thing.pth").write_bytes(b"damaged")
    with pytest.raises(WeightsInvalid, match="damaged or not the published"):
        weights.resolve(weight, offline=True)


def test_add_checks_the_hash_then_copies_atomically(tmp_path):
    weight = published("http://127.0.0.1:9/x")
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"x" * 10)
    with pytest.raises(WeightsInvalid, match="not the published"):
        weights.add_file(weight, wrong)
    good = tmp_path / "good.pth"
    good.write_bytes(PAYLOAD)
    dest = weights.add_file(weight, good)
    assert dest == weights.user_cache_dir() / "thing.pth" and dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["thing.pth"]
    assert weights.add_file(weight, good) == dest  # the same file again: nothing to do


def test_add_unpublished_runs_the_check_and_pins(tmp_path):
    weight = WeightFile(name="thing", filename="thing.pth")
    first, second = tmp_path / "1.pth", tmp_path / "2.pth"
    first.write_bytes(b"one")
    second.write_bytes(b"two")

    def refuse(path):
        raise WeightsInvalid("not a generator")

    with pytest.raises(WeightsInvalid, match="not a generator"):
        weights.add_file(weight, first, check=refuse)
    assert not (weights.user_cache_dir() / "thing.pth").exists()
    weights.add_file(weight, first, check=lambda p: None)
    with pytest.raises(OutputExists):
        weights.add_file(weight, second)
    weights.add_file(weight, second, force=True)
    assert weights.pinned_sha256(weight) == hashlib.sha256(b"two").hexdigest()


def test_registry_knows_both_horse2zebra_files():
    book = get_weight_file("horse2zebra")
    assert book is get_weight_file("horse2zebra_0.4.0.pth")
    assert book.size == 45_519_250
    assert book.sha256 == "043afb9bdb059f8423ba772f9b01b5d72dc63f8221989e7750807df6c55d56b4"
    assert "dlwpt-code" in book.url and book.url.endswith("data/p1ch2/horse2zebra_0.4.0.pth")
    original = get_weight_file("horse2zebra_cyclegan")
    assert original.filename == "horse2zebra.pth" and original.sha256 is None
    assert original.url == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    assert weights.download_destination(book) == weights.user_cache_dir() / "horse2zebra_0.4.0.pth"
    resnet = get_weight_file("resnet101")
    assert weights.download_destination(resnet).parent == weights.torch_hub_checkpoints()
    names = {w.name for w in known_weight_files()}
    assert {"resnet101", "efficientnet_lite0", *model_names(TRANSLATE)} <= names
    assert set(model_names(TRANSLATE)) == {"horse2zebra", "horse2zebra_cyclegan"}


def test_missing_generator_hint_names_the_fetch_command():
    hints = " ".join(weights.not_found(get_weight_file("horse2zebra"), offline=True).hints)
    assert "ptm weights fetch horse2zebra" in hints and "--weights FILE" in hints
    assert "efficientnet_lite0" not in hints
    hints = " ".join(weights.not_found(get_weight_file("horse2zebra_cyclegan"), offline=True).hints)
    assert "--allow-unverified" in hints


def test_download_with_the_right_blob_id_passes_though_sha256_and_size_are_wrong(server):
    blob = hashlib.sha1(b"blob %d\0" % len(PAYLOAD) + PAYLOAD).hexdigest()
    weight = WeightFile(name="thing", filename="thing.pth", url=f"{server}/good", sha256="0" * 64, size=7,
                        git_blob_sha1=blob)
    path = weights.fetch(weight)
    assert path.read_bytes() == PAYLOAD and weights.verify(path, weight) == "git blob id"
    wrong = WeightFile(name="thing", filename="thing.pth", url=f"{server}/wrong", sha256="0" * 64, size=7,
                       git_blob_sha1=blob)
    with pytest.raises(DownloadFailed, match="sha256 .*; git blob id .*; 1,048,576 bytes, expected 7"):
        weights.download(wrong.url, path.with_name("other.pth"), wrong)
    assert not path.with_name("other.pth").exists()


def test_add_accepts_the_right_blob_id(tmp_path):
    source = tmp_path / "mine.pth"
    source.write_bytes(PAYLOAD)
    blob = weights.git_blob_sha1_of(source)
    weight = WeightFile(name="thing", filename="thing.pth", sha256="0" * 64, size=7, git_blob_sha1=blob)
    assert weights.add_file(weight, source).read_bytes() == PAYLOAD
    assert weights.pinned_sha256(weight) is None  # published: checked against the record, not pinned
    with pytest.raises(WeightsInvalid, match="not the published thing.pth .*git blob id"):
        weights.add_file(WeightFile(name="thing", filename="thing.pth", sha256="0" * 64, git_blob_sha1="f" * 40),
                         source, force=True)


# --- the commands, through the real entry point -------------------------------------------------

@pytest.mark.slow
def test_weights_list_shows_search_order_and_states(run_ptm, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    save_generator(drop / "horse2zebra.pth", "cyclegan", ngf=8, n_blocks=1)
    done = run_ptm("weights", "list", env={"PTM_WEIGHTS_DIR": str(drop)})
    assert done.returncode == 0, done.stderr
    text = done.stdout
    order = [line.split(". ", 1)[1] for line in text.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert [o.split("  ")[0] for o in order] == [
        "--weights FILE", "$PTM_WEIGHTS_DIR", "repository weights/", "user cache", "torchvision cache",
        "installed package"]
    rows = {line.split()[0]: line.split() for line in text.splitlines()[9:] if line.strip()}
    assert rows["horse2zebra"][1:3] == ["missing", "-"]
    assert rows["horse2zebra_cyclegan"][1:3] == ["present", "unchecked"]
    assert rows["resnet101"][1] == "missing"
    assert "043afb9bdb059f84" in rows["horse2zebra"] and "45,519,250" in rows["horse2zebra"]

    listing = json.loads(run_ptm("weights", "list", "horse*", "--format", "json",
                                 env={"PTM_WEIGHTS_DIR": str(drop)}).stdout)
    assert [s["label"] for s in listing["search_order"]][1] == "$PTM_WEIGHTS_DIR"
    files = {f["name"]: f for f in listing["files"]}
    assert set(files) == {"horse2zebra", "horse2zebra_cyclegan"}
    assert files["horse2zebra_cyclegan"]["path"] == str(drop / "horse2zebra.pth")


@pytest.mark.slow
def test_weights_add_verify_fetch_commands(run_ptm, tmp_path):
    generator = save_generator(tmp_path / "h2z.pth", "cyclegan")  # the real shape, random weights
    small = save_generator(tmp_path / "small.pth", "cyclegan", ngf=8, n_blocks=1)

    refused = run_ptm("weights", "add", "horse2zebra", generator)  # published hash: must match
    assert refused.returncode == 2 and "not the published horse2zebra_0.4.0.pth" in refused.stderr
    too_small = run_ptm("weights", "add", "horse2zebra_cyclegan", small)
    assert too_small.returncode == 2 and "8 base channels" in too_small.stderr

    added = run_ptm("weights", "add", "horse2zebra_cyclegan", generator)
    assert added.returncode == 0, added.stderr
    cached = Path(added.stdout.strip())
    assert cached.name == "horse2zebra.pth" and cached.read_bytes() == generator.read_bytes()

    checked = run_ptm("weights", "verify", "horse2zebra_cyclegan")
    assert checked.returncode == 0 and checked.stdout.startswith("pinned\thorse2zebra_cyclegan\t")
    assert run_ptm("weights", "fetch", "horse2zebra_cyclegan").stdout.strip() == str(cached)  # already here

    cached.write_bytes(small.read_bytes())
    bad = run_ptm("weights", "verify")
    assert bad.returncode == 1 and "mismatch\thorse2zebra_cyclegan" in bad.stdout
    assert "horse2zebra.pth" in bad.stderr

    offline = run_ptm("weights", "fetch", "horse2zebra")
    assert offline.returncode == 2 and "offline" in offline.stderr
    missing = run_ptm("weights", "verify", "horse2zebra")
    assert missing.returncode == 2 and "ptm weights fetch horse2zebra" in missing.stderr
    unknown = run_ptm("weights", "fetch", "horse2zebre")
    assert unknown.returncode == 2 and "did you mean" in unknown.stderr


def test_http_error_names_the_status_and_leaves_nothing(server, tmp_path):
    destination = tmp_path / "out" / "thing.pth"
    with pytest.raises(DownloadFailed, match="HTTP 404"):
        weights.download(f"{server}/missing", destination, published(""))
    assert not destination.exists() and not list(destination.parent.glob("*"))


def test_offline_never_downloads(server):
    with pytest.raises(WeightsNotFound) as info:
        weights.resolve(published(f"{server}/good"), offline=True)
    assert "offline" in " ".join(info.value.hints)


# A generator registered in-process, as a plugin would, then the real CLI in that process: the file
# is a small random generator, so the published horse2zebra_0.4.0.pth is not needed.
_WITH_TINY_GENERATOR = """
import sys
from ptmcli.models import registry
registry.register(registry.generator_spec(registry.WeightFile(
    name="tiny_h2z", filename="tiny_h2z.pth", sha256="0" * 64, size=123, git_blob_sha1=sys.argv[1],
    url="http://127.0.0.1:9/never"), shape=(8, 1)))
sys.argv = ["ptm", *sys.argv[2:]]
from ptmcli.cli import main
main()
"""


@pytest.mark.slow
def test_a_generator_matching_only_its_git_blob_id_is_verified_and_runs(isolated_env, tmp_path, make_image):
    import subprocess
    import sys

    drop = tmp_path / "drop"
    drop.mkdir()
    tiny = save_generator(drop / "tiny_h2z.pth", ngf=8, n_blocks=1)
    blob = weights.git_blob_sha1_of(tiny)
    env = {**isolated_env, "PTM_WEIGHTS_DIR": str(drop)}

    def ptm(*args, blob_id=blob):
        return subprocess.run([sys.executable, "-c", _WITH_TINY_GENERATOR, blob_id, *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)

    checked = ptm("weights", "verify", "tiny_h2z")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"verified (git blob id)\ttiny_h2z\t{tiny}\t")
    listed = json.loads(ptm("weights", "list", "tiny*", "--format", "json").stdout)
    assert listed["files"][0]["check"] == "verified (git blob id)"
    assert listed["files"][0]["git_blob_sha1"] == blob
    zebra = tmp_path / "z.png"
    done = ptm("zebrafy", make_image("h.png"), "-o", zebra, "--model", "tiny_h2z", "--size", "16")
    assert done.returncode == 0, done.stderr
    assert zebra.is_file()

    added = ptm("weights", "add", "tiny_h2z", tiny)  # the blob id passes, then the network check runs
    assert added.returncode == 0, added.stderr
    too_big = save_generator(tmp_path / "big.pth", ngf=8, n_blocks=2)
    refused = ptm("weights", "add", "tiny_h2z", too_big, blob_id=weights.git_blob_sha1_of(too_big))
    assert refused.returncode == 2 and "2 residual blocks" in refused.stderr

    other = ptm("weights", "verify", "tiny_h2z", blob_id="f" * 40)
    assert other.returncode == 1 and other.stdout.startswith("mismatch\ttiny_h2z\t")
    assert "SHA-256 or git blob id of tiny_h2z.pth" in other.stderr


@pytest.mark.slow
def test_verify_horse2zebra_on_a_wrong_file_names_both_checks(run_ptm, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    wrong = b"not the book's generator"
    (drop / "horse2zebra_0.4.0.pth").write_bytes(wrong)
    # The id the book's repository records for the file, whole, as every listing shows it.
    record = json.loads(run_ptm("weights", "list", "horse2zebra", "--format", "json").stdout)["files"][0]
    assert record["git_blob_sha1"] == "ce10268a67fba8227bd42a071e17eef1b358fa2b"
    done = run_ptm("weights", "verify", "horse2zebra", env={"PTM_WEIGHTS_DIR": str(drop)})
    assert done.returncode == 1
    assert done.stdout.startswith(f"mismatch\thorse2zebra\t{drop / 'horse2zebra_0.4.0.pth'}\t")
    assert "does not match the expected SHA-256 or git blob id of horse2zebra_0.4.0.pth" in done.stderr
    assert "expected 043afb9bdb059f84..." in done.stderr and "expected ce10268a67fba822..." in done.stderr
    table = json.loads(run_ptm("weights", "verify", "horse2zebra", "--format", "json",
                               env={"PTM_WEIGHTS_DIR": str(drop)}).stdout)
    assert table[0]["check"] == "mismatch"
    assert table[0]["git_blob_sha1"] == hashlib.sha1(b"blob %d\0" % len(wrong) + wrong).hexdigest()  # the file's
