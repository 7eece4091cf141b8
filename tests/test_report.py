"""--report and `ptm report`: the page in a real headless browser, escaping, kills, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import render
from conftest import EXAMPLES, ptm_command

from ptmcli.results import Classification, Prediction
from ptmcli.sinks.report_page import Card, classify_page

HOSTILE = "<img src=x onerror=alert(1)>.png"
LITE = ["--model", "efficientnet_lite0"]


class Dom(HTMLParser):
    """The elements of a page that the tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.cards: list[dict] = []
        self.text: list[str] = []
        self.scripts = 0
        self.failed_rows = 0
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in.append(attrs.get("class") or attrs.get("id") or tag)
        if tag == "img":
            self.images.append(attrs)
        if tag == "figure":
            self.cards.append(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "failed" in self._in:
            self.failed_rows += 1

    def handle_endtag(self, tag):
        if self._in and tag not in ("img", "meta", "link", "input"):
            self._in.pop()

    def handle_data(self, data):
        self.text.append(data)

    def field(self, name: str) -> str:
        """The value after a provenance name (the <dd> after its <dt>)."""
        texts = [t for t in self.text if t.strip()]
        return texts[texts.index(name) + 1]


def test_every_text_from_outside_is_escaped():
    hostile = Classification(HOSTILE, (Prediction(1, 0, '"><script>alert(2)</script>', 0.5),))
    failed = Classification("a&b<i>.jpg", error="a&b<i>.jpg: </table><b>bad")
    page = classify_page("t", [("command", "ptm classify '<b>'")], "s", True,
                         [Card('x" onerror="alert(3)', hostile)], [failed])
    assert "<img src=x" not in page and "<script>alert" not in page and "<b>" not in page
    dom = Dom(page)
    assert [i["src"] for i in dom.images] == ['x" onerror="alert(3)']
    assert HOSTILE in dom.text and '"><script>alert(2)</script>' in dom.text and "</table><b>bad" in dom.text
    assert dom.failed_rows == 2  # the header and one input


def test_the_proxy_sees_page_requests(tmp_path):
    page = tmp_path / "leaky.html"
    # TEST-NET-3: the proxy on 127.0.0.1 takes the request; nothing is sent to that address.
    page.write_text('<!DOCTYPE html><img src="http://203.0.113.9/x.png"><p>leaky</p>')
    dom, requests = render(page, tmp_path)
    assert "leaky" in dom and requests == ["203.0.113.9"]


def test_reports_and_urls_run_without_torch(tmp_path):
    import sys

    page = tmp_path / "r.html"
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from ptmcli.results import BatchOutput, Classification, Prediction\n"
            "from ptmcli.sinks.report import ClassifyReport\n"
            "import ptmcli.downloads, ptmcli.sinks.readback\n"
            f"r = ClassifyReport(Path({str(page)!r}), [{str(EXAMPLES / 'coffee.png')!r}], [])\n"
            f"r.write([0], BatchOutput([Classification({str(EXAMPLES / 'coffee.png')!r}, "
            "(Prediction(1, 967, 'espresso', 0.9),))]))\n"
            "r.close()\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "False\n", done.stderr
    assert len(Dom(page.read_text()).images) == 1


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "photos"
    folder.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        shutil.copy(EXAMPLES / name, folder / name)
    shutil.copy(EXAMPLES / "coffee.png", folder / HOSTILE)
    (folder / "broken.jpg").write_bytes(b"not a picture")
    return folder


def test_classify_report_in_a_browser(run_ptm, photos, tmp_path):
    page = tmp_path / "r.html"
    done = run_ptm("classify", photos, *LITE, "--top", "3", "--device", "cpu", "--report", page)
    assert done.returncode == 1, done.stderr
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # nothing it could fetch
    dom_text, requests = render(page, tmp_path, screenshot=tmp_path / "r.png")
    assert requests == []
    dom = Dom(dom_text)
    assert len(dom.images) == 3 and all(i["src"].startswith("data:image/jpeg;base64,") for i in dom.images)
    assert [c["data-label"] for c in dom.cards] == ["espresso", "tiger cat", "espresso"]
    assert f"{photos}/{HOSTILE}" in dom.text  # shown as text, not made an element
    assert not any(i["src"] == "x" for i in dom.images)
    assert dom.failed_rows == 2 and "not an image Pillow can read" in dom.text
    assert dom.field("model") == "efficientnet_lite0"
    assert dom.field("weights SHA-256") == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    assert dom.field("counts") == "3 ok, 1 failed, 0 not done, 4 in all"
    assert dom.field("precision") == "fp32" and dom.field("device") == "cpu"
    assert "complete: 4 inputs" in dom.text
    assert (tmp_path / "r.png").stat().st_size > 20_000


def test_thumbnails_go_to_a_folder_above_the_limit(run_ptm, photos, tmp_path):
    page = tmp_path / "big.html"
    done = run_ptm("classify", photos, *LITE, "--report", page, env={"PTM_REPORT_INLINE_MAX": "2"})
    assert done.returncode == 1
    dom = Dom(render(page, tmp_path)[0])
    assert [i["src"] for i in dom.images] == ["big_files/000001.jpg", "big_files/000002.jpg", "big_files/000003.jpg"]
    from PIL import Image

    for image in dom.images:
        with Image.open(tmp_path / image["src"]) as thumb:
            assert max(thumb.size) == 256 and thumb.format == "JPEG"


def _start(env, *args, cwd) -> subprocess.Popen:
    return subprocess.Popen([*ptm_command(), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd)


@pytest.mark.slow
def test_killed_runs_leave_a_complete_report_or_none_and_resume_covers_all(isolated_env, tmp_path, make_image):
    for i in range(30):
        make_image(f"img{i:02d}.png", size=(32, 32), folder=tmp_path / "many")
    common = ["classify", "many", *LITE, "--batch-size", "2", "--top", "2", "-o", "res.jsonl"]
    # SIGTERM: the batch in flight is finished, then the report of the rows done is written.
    proc = _start(isolated_env, *common, "--report", "stopped.html", cwd=tmp_path)
    while not (tmp_path / "res.jsonl").exists() or len((tmp_path / "res.jsonl").read_text().splitlines()) < 4:
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    done = len((tmp_path / "res.jsonl").read_text().splitlines())
    assert 4 <= done < 30
    dom = Dom((tmp_path / "stopped.html").read_text())
    assert len(dom.images) == done and f"partial: stopped after {done} of 30 inputs" in dom.text
    assert dom.field("counts") == f"{done} ok, 0 failed, {30 - done} not done, 30 in all"

    # SIGKILL: nothing is written on the way out, and a report is only ever renamed into place whole.
    proc = _start(isolated_env, *common, "--resume", "--report", "killed.html", cwd=tmp_path)
    while len((tmp_path / "res.jsonl").read_text().splitlines()) < done + 2:
        assert proc.poll() is None, proc.stderr.read()
    proc.kill()
    proc.wait()
    assert sorted(p.name for p in tmp_path.iterdir() if "killed" in p.name) == []

    # The resumed run's report covers the rows done before it, too.
    finish = subprocess.run([*ptm_command(), *common, "--resume", "--report", "all.html"], cwd=tmp_path,
                            env=isolated_env, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    dom = Dom((tmp_path / "all.html").read_text())
    assert len(dom.images) == 30 and "complete: 30 inputs" in dom.text
    names = [t for t in dom.text if t.startswith("many/")]
    assert names == [f"many/img{i:02d}.png" for i in range(30)]
    records = [json.loads(line) for line in (tmp_path / "res.jsonl").read_text().splitlines()]
    assert [c["data-label"] for c in dom.cards] == [r["predictions"][0]["label"] for r in records]

    # ptm report renders the same rows from the results file.
    again = subprocess.run([*ptm_command(), "report", "res.jsonl", "-o", "again.html"], cwd=tmp_path,
                           env=isolated_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    dom_again = Dom((tmp_path / "again.html").read_text())
    assert [c["data-label"] for c in dom_again.cards] == [c["data-label"] for c in dom.cards]
    assert [i["src"] for i in dom_again.images] == [i["src"] for i in dom.images]


def test_zebrafy_report_in_a_browser(run_ptm, photos, tmp_path):
    from zebra_helpers import save_generator

    weights = save_generator(tmp_path / "gen.pth", ngf=8, n_blocks=2)
    page = tmp_path / "z.html"
    done = run_ptm("zebrafy", photos, "-o", tmp_path / "out/", "--weights", weights, "--size", "64",
                   "--report", page)
    assert done.returncode == 1, done.stderr
    dom_text, requests = render(page, tmp_path, screenshot=tmp_path / "z.png")
    assert requests == []
    dom = Dom(dom_text)
    assert len(dom.images) == 6 and len(dom.cards) == 3
    assert f"{photos}/{HOSTILE} → {tmp_path}/out/{HOSTILE[:-4]}_zebra.png" in dom.text
    assert dom.field("weights file") == "gen.pth" and dom.field("counts") == "3 ok, 1 failed, 0 not done, 4 in all"
    assert "96×64 px" in "".join(dom.text)


@pytest.mark.parametrize(("args", "message"), [
    (["--report", "r.txt"], "ptm: error: --report r.txt: a report is an HTML file"),
    (["--report", "."], "ptm: error: --report . is a directory"),
])
def test_bad_report_names_exit_2(run_ptm, photos, args, message):
    done = run_ptm("classify", photos, *LITE, *args)
    assert done.returncode == 2 and done.stderr.splitlines()[0] == message
