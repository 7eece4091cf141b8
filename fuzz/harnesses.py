"""One harness per reader: bytes -> what the command runs on them, in this process.

Each harness writes the bytes to a file and drives the command that reads it, through
`ptmcli.cli` (so a harness stays valid when modules move) or, where a command would load a
model per run, through the one library function the command's decode thread calls. A harness
raises (a *finding*) when ptm breaks its contract for readers (ARCHITECTURE.md, "Hostile
bytes"): an exception that is not ptm's own error, a message of more than one line, an exit
code outside 0/1/2, or an output left behind by a command that failed.

Used by run.py (atheris, coverage-guided) and replay.py (every seed and regression file, no
atheris needed).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

FUZZ_DIR = Path(__file__).resolve().parent


class Finding(AssertionError):
    """ptm broke the reader contract on these bytes."""


_work: list[Path] = []


def workdir(fresh: bool = False) -> Path:
    """A scratch folder (tmpfs when there is one); `fresh` empties it (once per input)."""
    if not _work:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix="ptm-fuzz-", dir=base))
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # weights add/verify stay in here
        os.environ["PTM_OFFLINE"] = "1"
        _work.append(root)
    root = _work[0]
    for entry in root.iterdir() if fresh else ():
        if entry.name != "cache":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return root


def write_input(data: bytes, name: str) -> Path:
    """The input's file, in a scratch folder emptied of the previous input's files."""
    path = workdir(fresh=True) / name
    path.write_bytes(data)
    return path


def _check_error(exc: BaseException) -> None:
    message = getattr(exc, "message", str(exc))
    if "\n" in message:
        raise Finding(f"a message of more than one line: {message!r}") from exc


def cli(*args: str) -> int:
    """Run `ptm ARGS` in this process the way `ptm` does, minus the fast exit; the exit code.

    ptm's own errors (PtmError, usage errors, exits) are what a reader may raise; anything else
    propagates and is the finding, with its traceback.
    """
    import click

    from ptmcli import cli as ptm_cli
    from ptmcli.errors import PtmError

    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ptm_cli.app(args=list(args), prog_name="ptm", standalone_mode=False)
    except PtmError as exc:
        _check_error(exc)
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if code not in (0, 1, 2):
        raise Finding(f"exit code {code}")
    for line in err.getvalue().splitlines():
        if line and not line.startswith(("ptm: ", "  ")):
            raise Finding(f"a line on stderr that is not ptm's: {line!r}")
        if "internal error" in line or "Traceback" in line:
            raise Finding(line)
    return code


def library(call: Callable[[], object]) -> None:
    """Call library code the way a decode thread does: ptm's own errors are fine, others not."""
    from ptmcli.errors import PtmError

    try:
        call()
    except PtmError as exc:
        _check_error(exc)


# --- tensor files: ptm inspect-tensor, ptm export-hdf5 ---------------------------------------------


def _inspect(suffix: str) -> Callable[[bytes], None]:
    def harness(data: bytes) -> None:
        path = write_input(data, f"input{suffix}")
        cli("inspect-tensor", str(path), "--format", "json")
        first = _first_tensor_key(path)
        if first is not None:
            # One entry's data: values, statistics, a preview, a view, rendered as a table.
            cli("inspect-tensor", str(path), first, "--format", "table")
            cli("inspect-tensor", str(path), first, "--select", "..., ::2", "--contiguous", "--format", "text")

    return harness


def _first_tensor_key(path: Path) -> str | None:
    """The first readable tensor entry of a container, if it opens at all."""
    from ptmcli.errors import PtmError
    from ptmcli.tensorio.summary import inspect_file

    try:
        summary = inspect_file(str(path), stats=False, preview_per_dim=0)
    except PtmError:
        return None
    if summary.kind != "container":
        return None
    key = summary.key.rstrip("/") + "/" if summary.key else ""
    return next((key + e.name for e in summary.entries if e.kind == "tensor"), None)


def export_hdf5(data: bytes) -> None:
    """export-hdf5 of a fuzzed source beside a good one: the good one is written whatever happens."""
    path = write_input(data, "source.bin")
    good = workdir() / "good.npy"
    good.write_bytes(_GOOD_NPY)
    out = workdir() / "out.h5"
    code = cli("export-hdf5", str(path), str(good), "-o", str(out))
    if code == 2 and out.exists():
        raise Finding("export-hdf5 could not start, yet wrote its output")
    if code in (0, 1):
        cli("inspect-tensor", str(out), "--format", "json")


_GOOD_NPY = (b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
             + b" " * 59 + b"\n" + b"\x00\x00\x80?\x00\x00\x00@")


# --- images: classify and zebrafy decode (URL bodies take the same path) -----------------------


def _classify_decode():
    try:
        from ptmcli.pixels.crop import load_for_model  # after issue 15 moved decoding to pixels/
    except ImportError:
        from ptmcli.pipeline.preprocess import load_for_model
    return load_for_model


def image_classify(data: bytes) -> None:
    from ptmcli.models.registry import get_classifier

    path = write_input(data, "image")
    spec = get_classifier("resnet101").preprocess
    decode = _classify_decode()
    library(lambda: decode(str(path), spec))
    library(lambda: decode(str(path), spec, exact_decode=True))


def _zebrafy_decode():
    try:
        from ptmcli.pixels.translate import prepare_image  # after issue 15 (see above)
    except ImportError:
        from ptmcli.models.generator import prepare_image
    return prepare_image


def image_zebrafy(data: bytes) -> None:
    prepare_image = _zebrafy_decode()
    path = write_input(data, "image")
    library(lambda: prepare_image(str(path), 256))


def video_zebrafy(data: bytes) -> None:
    """A video for zebrafy: the sniff, the demuxer and decoder (PyAV: FFmpeg), the first frames as
    the generator's pictures, then the sink that writes them with the source's audio copied."""
    import io

    from ptmcli.pixels.media import is_video
    from ptmcli.pixels.video import Clip, video_frames
    from ptmcli.results import BatchOutput, Translation
    from ptmcli.sinks.images import ImageSink

    path = write_input(data, "clip.mp4")
    is_video(str(path))
    frames: list = []
    library(lambda: frames.extend(video_frames(str(path), Clip(short_side=16, even=True, frames=6))))
    if not frames:
        return
    sink = ImageSink(io.StringIO(), [workdir() / "out.mp4"], replace=True)
    results = [Translation(str(path), image=prepared.rgb, source=prepared.rgb, frame=stamp)
               for prepared, stamp in frames]
    written = sink.write([0] * len(results), BatchOutput(results))
    sink.close()
    for result in (written.results if written is not None else []):
        if result.error is not None and "\n" in result.error:
            raise Finding(f"a message with a newline: {result.error!r}")


# --- results files: ptm report, ptm merge, classify --resume -----------------------------------------


RESULT_CATEGORIES = ("tench", "goldfish", "great white shark", "tiger shark")
RESULT_PATHS = ("a.jpg", "b.jpg", "c.jpg")


def result_info(top_k: int = 2):
    from ptmcli.sinks.resultfile import RunInfo

    return RunInfo(model="resnet18", weights_file="resnet18.pth", weights_sha256="0" * 64,
                   preprocess={"resize": 256, "crop": 224}, top_k=top_k, categories=RESULT_CATEGORIES,
                   inputs_total=len(RESULT_PATHS), ptm_version="fuzz")


def result_rows():
    from ptmcli.sinks.resultfile import Row

    return [Row(i, p) for i, p in enumerate(RESULT_PATHS)]


def _open_for_resume(path: Path):
    try:
        from ptmcli.sinks.results import open_results  # the restructured results formats
    except ImportError:
        from ptmcli.sinks.resultfile import open_results
    return open_results(path, result_rows(), result_info(), resume=True)


def _results(suffix: str) -> Callable[[bytes], None]:
    def harness(data: bytes) -> None:
        from ptmcli.errors import PtmError

        path = write_input(data, f"results{suffix}")
        cli("report", str(path), "-o", str(workdir() / "page.html"))
        merged = workdir() / f"merged{suffix}"
        if cli("merge", str(path), "-o", str(merged), "--partial") != 0 and merged.exists():
            raise Finding("merge failed, yet wrote its output")
        try:
            results = _open_for_resume(path)
        except PtmError as exc:
            _check_error(exc)
            if path.read_bytes() != data:
                raise Finding("--resume refused the file, yet changed it") from None
            return
        try:
            results.done_before()
        except PtmError as exc:
            _check_error(exc)
        finally:
            results.abort()

    return harness


# --- weight files: --weights, ptm weights add/verify --------------------------------------------------


_specs: dict[str, object] = {}


def _weights(model: str, generator: bool) -> Callable[[bytes], None]:
    def harness(data: bytes) -> None:
        from ptmcli.models.checkpoints import build_with_weights
        from ptmcli.models.registry import get_classifier, get_generator

        if model not in _specs:
            _specs[model] = get_generator(model) if generator else get_classifier(model)
        path = write_input(data, "weights.pth")
        library(lambda: build_with_weights(_specs[model], path))

    return harness


def weights_cli(data: bytes) -> None:
    path = write_input(data, "horse2zebra.pth")
    if cli("weights", "add", "horse2zebra_cyclegan", str(path), "--force") == 0:
        cli("weights", "verify", "horse2zebra_cyclegan", "--format", "json")


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "tensor_pt_zip": _inspect(".pt"),
    "tensor_pt_legacy": _inspect(".pt"),
    "tensor_npy": _inspect(".npy"),
    "tensor_npz": _inspect(".npz"),
    "tensor_safetensors": _inspect(".safetensors"),
    "tensor_hdf5": _inspect(".h5"),
    "export_hdf5": export_hdf5,
    "image_classify": image_classify,
    "image_zebrafy": image_zebrafy,
    "video_zebrafy": video_zebrafy,
    "results_hdf5": _results(".h5"),
    "results_jsonl": _results(".jsonl"),
    "results_csv": _results(".csv"),
    "results_tsv": _results(".tsv"),
    "weights_classifier": _weights("resnet18", generator=False),
    "weights_generator": _weights("horse2zebra", generator=True),
    "weights_cli": weights_cli,
}


def get(name: str) -> Callable[[bytes], None]:
    if name not in HARNESSES:
        sys.exit(f"unknown harness {name!r}; one of: {', '.join(HARNESSES)}")
    return HARNESSES[name]


def preload() -> None:
    """Import what the harnesses reach, so that atheris instruments it (run.py calls this inside
    `atheris.instrument_imports`); the runtimes and engines are left out (no harness reaches them)."""
    import importlib
    import pkgutil

    from PIL import Image

    import ptmcli

    Image.init()  # every Pillow plugin, imported now
    skip = ("ptmcli.__main__", "ptmcli.models.runtimes", "ptmcli.pipeline.engines", "ptmcli.models.torchvision_table")
    for module in pkgutil.walk_packages(ptmcli.__path__, "ptmcli."):
        if not module.name.startswith(skip):
            importlib.import_module(module.name)
