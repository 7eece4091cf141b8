"""`--report FILE.html`: a page a person looks at, written as a sink like the result files.

The page is rendered once, atomically, when the run ends, and also when it is stopped (SIGTERM,
Ctrl-C, a write error): readers see no report or a complete one of the rows done, never half a
page. Thumbnails are bounded (256 px on the long side, JPEG quality 80, about 10-20 kB each) and
inline as data: URIs, so the file can be mailed; above INLINE_MAX thumbnails (or
PTM_REPORT_INLINE_MAX) they go to a folder beside the report (`NAME_files/`) and the page links
them, so a report of 10,000 photos stays a small page and a folder of a few hundred MB.

Torch-free: the classify cold path without PyTorch and `ptm report` use it too.
"""

from __future__ import annotations

import base64
import io
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence
from urllib.parse import quote

from ptmcli.atomic import temp_beside, writing
from ptmcli.errors import InputError, OutputUnwritable, UsageProblem
from ptmcli.results import BatchOutput, Classification
from ptmcli.sinks.report_page import Card, Pair, classify_page, strips, zebrafy_page

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

THUMB_SIDE = 256
THUMB_QUALITY = 80
INLINE_MAX = 1000
REPORT_SUFFIXES = (".html", ".htm")


def inline_max() -> int:
    value = os.environ.get("PTM_REPORT_INLINE_MAX", "")
    return int(value) if value.isdigit() else INLINE_MAX


def check_report(path_text: str) -> Path:
    """Refuse early (exit 2) a report that could not be written: wrong name, a folder, no permission."""
    path = Path(path_text)
    if path.is_dir():
        raise OutputUnwritable(f"--report {path} is a directory", ["name a file, e.g. report.html"])
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageProblem(f"--report {path_text}: a report is an HTML file", ["name it .html, e.g. report.html"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp_beside(path).unlink()  # can a file be created there at all?
    except OSError as exc:
        raise OutputUnwritable(f"cannot write {path}: {exc.strerror or exc}",
                               ["choose a folder you can write to"]) from None
    return path


def thumbnail_jpeg(image: "Image.Image") -> bytes:
    image = image.convert("RGB")
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()


def array_thumbnail(pixels: "np.ndarray") -> bytes:
    from PIL import Image

    return thumbnail_jpeg(Image.fromarray(pixels))


def file_thumbnail(path: str) -> bytes | None:
    """A thumbnail of an input as a person sees it (EXIF turned), or None if it cannot be read."""
    from ptmcli.pixels.decode import open_image

    try:
        # JPEG draft decoding at about the thumbnail's size: most of a photo's decoding is skipped.
        return thumbnail_jpeg(open_image(path, min_short_side=THUMB_SIDE))
    except (InputError, OSError, ValueError, MemoryError):
        return None


def frame_thumbnails(path: str, times: Sequence[float]) -> list[bytes | None]:
    """Thumbnails of a video's frames at `times`, or None for each it cannot give."""
    from ptmcli.pixels.sampling import frames_at

    found: list[bytes | None] = []
    try:
        found = [None if isinstance(jpeg, str) else jpeg for jpeg in frames_at(path, times, thumbnail_jpeg)]
    except (InputError, OSError, ValueError, MemoryError):
        pass
    return found + [None] * (len(times) - len(found))


class Thumbnails:
    """Where a report's thumbnails live: inline data: URIs, or files in a folder beside it."""

    def __init__(self, report: Path, count: int):
        self.folder = report.with_name(report.stem + "_files") if count > inline_max() else None
        self._made = 0

    def src(self, jpeg: bytes | None) -> str | None:
        if jpeg is None:
            return None
        if self.folder is None:
            return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        self._made += 1
        name = f"{self._made:06d}.jpg"
        self.folder.mkdir(parents=True, exist_ok=True)
        with writing(self.folder / name) as out:
            out.write(jpeg)
        return quote(f"{self.folder.name}/{name}")


def torch_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"


def common_provenance(started: float, wall: float | None, ok: int, failed: int, total: int) -> list[tuple[str, str]]:
    import sys

    from ptmcli import __version__

    when = datetime.fromtimestamp(started, timezone.utc).astimezone()
    return [
        ("ptm", __version__), ("torch", torch_version()),
        ("date", when.isoformat(timespec="seconds")),
        ("wall time", "not recorded" if wall is None else f"{wall:.1f} s"),
        ("counts", f"{ok} ok, {failed} failed, {total - ok - failed} not done, {total} in all"),
        ("command", " ".join(["ptm", *sys.argv[1:]])),
    ]


def write_page(path: Path, page: str) -> None:
    try:
        with writing(path, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(page)
    except OSError as exc:
        raise OutputUnwritable(f"could not write the report {path} ({exc.strerror or exc})") from None


class ClassifyReport:
    """Classifications -> a grid of thumbnails with their top-k bars, failed inputs in a table.

    `paths` holds every row of the run (in order); `previous` the rows an earlier run of a
    --resume already classified, so the report covers them too.
    """

    def __init__(self, path: Path, paths: Sequence[str], provenance: Sequence[tuple[str, str]],
                 previous: dict[int, Classification] | None = None, timed: bool = True):
        from ptmcli.downloads import keep_recent_downloads

        self.timed = timed
        self.path = path
        self.paths = list(paths)
        self.provenance = list(provenance)
        self.started = time.time()
        self._clock = time.monotonic()
        self.results: dict[int, Classification] = dict(previous or {})
        self._srcs: dict[int, str | None] = {}
        self._thumbs = Thumbnails(path, len(self.paths))
        self._written = False
        # The report shows the inputs it reads again: a URL is then served from memory, not fetched twice.
        keep_recent_downloads()

    def write(self, rows: Sequence[int], batch: BatchOutput) -> None:
        for row, result in zip(rows, batch.results):
            self.results[row] = result
            if result.time is None:  # a video's frames get theirs when the page is made
                self._srcs[row] = self._thumbs.src(file_thumbnail(result.path)) if result.ok else None

    def _page(self) -> str:
        for row, result in self.results.items():
            if result.ok and result.time is None and row not in self._srcs:  # done by an earlier run
                self._srcs[row] = self._thumbs.src(file_thumbnail(result.path))
        self._frame_thumbnails()
        done = [self.results[row] for row in sorted(self.results)]
        cards = strips([Card(self._srcs.get(row), self.results[row]) for row in sorted(self.results)
                        if self.results[row].ok])
        failed = [r for r in done if not r.ok]
        total = len(self.paths)
        complete = len(done) == total
        status = (f"complete: {total} inputs" if complete
                  else f"partial: stopped after {len(done)} of {total} inputs")
        wall = time.monotonic() - self._clock if self.timed else None
        provenance = [*self.provenance, *common_provenance(self.started, wall, len(cards), len(failed), total)]
        return classify_page("ptm classify report", provenance, status, complete, cards, failed)

    def _frame_thumbnails(self) -> None:
        """Thumbnails of the sampled frames of each video, decoding it once (none if it cannot be)."""
        videos: dict[str, list[int]] = {}
        for row in sorted(self.results):
            result = self.results[row]
            if result.ok and result.time is not None and row not in self._srcs:
                videos.setdefault(result.path, []).append(row)
        for path, rows in videos.items():
            jpegs = frame_thumbnails(path, [self.results[row].time for row in rows])
            for row, jpeg in zip(rows, jpegs):
                self._srcs[row] = self._thumbs.src(jpeg)

    def close(self) -> None:
        if not self._written:
            self._written = True
            write_page(self.path, self._page())

    def abort(self) -> None:
        """Interrupted: the rows done so far still make a complete (partial) report."""
        try:
            self.close()
        except (OutputUnwritable, OSError):
            pass


class ZebrafyReport:
    """Translations -> input and output side by side, with sizes and time per image."""

    def __init__(self, path: Path, total: int, provenance: Sequence[tuple[str, str]], targets: Sequence[Path]):
        self.path = path
        self.total = total
        self.targets = targets
        self.provenance = list(provenance)
        self.started = time.time()
        self._clock = time.monotonic()
        self._last = self._clock
        self.pairs: list[Pair] = []
        self.failed: list[tuple[str, str]] = []
        self._thumbs = Thumbnails(path, 2 * total)
        self._written = False
        self._failed_rows: set[int] = set()

    def write(self, rows: Sequence[int], batch: BatchOutput) -> None:
        # Time per image: the batch's share of the wall time since the previous one.
        now = time.monotonic()
        each, self._last = (now - self._last) / max(1, len(rows)), now
        for row, result in zip(rows, batch.results):
            if row in self._failed_rows:
                continue  # the rest of a video that failed part way
            if not result.ok:
                self._failed_rows.add(row)
                self.fail(result.path, result.error)
            elif result.frame is None or result.frame.last:  # a video: one pair, its last frame
                self.add(result.path, result.source, result.image, self.targets[row], each)

    def add(self, path: str, source: "np.ndarray", output: "np.ndarray", target: Path, seconds: float) -> None:
        height, width = output.shape[:2]
        self.pairs.append(Pair(path, self._thumbs.src(array_thumbnail(source)) or "",
                               self._thumbs.src(array_thumbnail(output)) or "", (width, height),
                               str(target), seconds))

    def fail(self, path: str, reason: str) -> None:
        self.failed.append((path, reason))

    def close(self) -> None:
        if self._written:
            return
        self._written = True
        done = len(self.pairs) + len(self.failed)
        complete = done == self.total
        status = (f"complete: {self.total} inputs" if complete
                  else f"partial: stopped after {done} of {self.total} inputs")
        provenance = [*self.provenance, *common_provenance(self.started, time.monotonic() - self._clock,
                                                           len(self.pairs), len(self.failed), self.total)]
        write_page(self.path, zebrafy_page("ptm zebrafy report", provenance, status, complete,
                                           self.pairs, self.failed))

    def abort(self) -> None:
        try:
            self.close()
        except (OutputUnwritable, OSError):
            pass


def report_of_results(source: Path, destination: Path) -> None:
    """`ptm report`: the page of a classify results file (any kind ptm writes)."""
    from ptmcli.errors import NoInputs
    from ptmcli.sinks.readback import describe, read_results

    if not source.is_file():
        raise NoInputs(f"{source}: no such file", ["name a results file written by ptm classify --output"])
    info, paths, found = read_results(source)
    provenance = [*describe(info), ("results file", str(source))]
    if info.get("ptm_version"):
        provenance.append(("results made by", f"ptm {info['ptm_version']}"))
    ClassifyReport(destination, paths, provenance, found, timed=False).close()
