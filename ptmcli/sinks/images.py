"""Result images on disk: output names, format from the extension, writes that never clobber.

Torch-free: the command plans every output before a model is loaded, so a bad `-o` or a name
collision is reported in a second, not after the first forward pass.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ptmcli.atomic import writing
from ptmcli.downloads import is_url
from ptmcli.errors import OutputExists, UsageProblem

if TYPE_CHECKING:
    from typing import TextIO

    import numpy as np
    from PIL import Image

    from ptmcli.results import BatchOutput, Translation

class HasPath(Protocol):
    path: str  # an input (pipeline/inputs.InputItem): a file, or a URL


# Lower-cased suffix -> Pillow format name.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
NAME_FIELDS = ("stem", "ext")
DEFAULT_NAME = "{stem}_zebra.png"
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {}}


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise UsageProblem(
            f"{path}: cannot tell the image format from {suffix or 'a name without an extension'!r}",
            ["end the name in .png, .jpg or .webp"],
        )
    return OUTPUT_FORMATS[suffix]


def check_name_pattern(pattern: str) -> None:
    """A --name pattern: a plain file name with {stem} and/or {ext}, ending in a known extension."""
    if "/" in pattern or os.sep in pattern or pattern in (".", ".."):
        raise UsageProblem(f"--name {pattern!r} must be a file name, not a path",
                           ["outputs go into the -o folder; e.g. --name '{stem}_zebra.jpg'"])
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]
    except ValueError as exc:
        raise UsageProblem(f"--name {pattern!r}: {exc}", ["use {stem} and {ext}, e.g. '{stem}_zebra.png'"]) from None
    unknown = [f for f in fields if f not in NAME_FIELDS]
    if unknown:
        raise UsageProblem(f"--name {pattern!r}: unknown field {{{unknown[0]}}}",
                           ["use {stem} (input name without extension) and {ext} (its extension)"])
    output_format(pattern)


def source_name(input_path: str) -> Path:
    """The file name an input stands for: a file's own, or a URL's last path segment (decoded;
    never a folder, so a hostile URL cannot place an output outside -o)."""
    if not is_url(input_path):
        return Path(input_path)
    from urllib.parse import unquote, urlsplit

    segment = unquote(urlsplit(input_path).path.rstrip("/").rsplit("/", 1)[-1])
    segment = segment.replace("/", "_").replace("\\", "_").replace("\0", "_").lstrip(".")
    return Path(segment or "download")


def _name_for(pattern: str, path: Path) -> str:
    return pattern.format(stem=path.stem, ext=path.suffix.lstrip(".").lower())


def plan_outputs(
    inputs: Sequence[tuple["HasPath", Path | None]],
    output: str,
    pattern: str,
) -> list[Path]:
    """One output path per input, in order. `inputs` pairs each item with the folder it was found in.

    `-o FILE.png` takes exactly one input. Otherwise `-o` is a folder (a trailing slash, an existing
    folder, or a name without an extension): each output is named by `pattern`, in the same
    sub-folder the input had under the folder given on the command line.
    """
    check_name_pattern(pattern)
    target = Path(output)
    as_folder = output.endswith(("/", os.sep)) or target.is_dir() or not target.suffix
    if not as_folder:
        output_format(target)
        if len(inputs) != 1:
            raise UsageProblem(
                f"{len(inputs)} inputs cannot all be written to {output}",
                [f"name a folder instead: -o {target.with_suffix('')}/ (outputs are named by --name, "
                 f"default '{pattern}')"],
            )
        planned = [target]
    else:
        if target.exists() and not target.is_dir():
            raise UsageProblem(f"-o {output}: exists and is not a folder")
        planned = []
        for item, root in inputs:
            source = source_name(item.path)
            sub = source.parent.relative_to(root) if root is not None and source.is_relative_to(root) else Path()
            planned.append(target / sub / _name_for(pattern, source))
    _refuse_collisions(inputs, planned)
    return planned


def _refuse_collisions(inputs: Sequence[tuple["HasPath", Path | None]], planned: list[Path]) -> None:
    keys = [os.path.abspath(p) for p in planned]
    for (item, _), key in zip(inputs, keys):
        if key == os.path.abspath(item.path):
            raise UsageProblem(f"{item.path} would be overwritten by its own output",
                               ["choose another -o, or another --name"])
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    if repeated:
        sources = [item.path for (item, _), key in zip(inputs, keys) if key == repeated[0]]
        raise UsageProblem(
            f"{len(sources)} inputs would be written to the same file {repeated[0]}: {', '.join(sources[:3])}",
            ["add the extension to the name: --name '{stem}_{ext}_zebra.png', or run them separately"],
        )


def compose(
    image: "np.ndarray",
    fmt: str,
    source: "np.ndarray | None" = None,
    alpha: "np.ndarray | None" = None,
) -> "Image.Image":
    """The picture to save: the output, or input and output side by side; alpha where it fits."""
    import numpy as np
    from PIL import Image

    pixels = image if source is None else np.concatenate([source, image], axis=1)
    if alpha is not None and fmt in ("PNG", "WEBP"):
        mask = alpha if source is None else np.concatenate([alpha, alpha], axis=1)
        return Image.fromarray(np.dstack([pixels, mask]), "RGBA")
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def write_image(image: "Image.Image", path: Path, fmt: str, replace: bool = False) -> None:
    """Save atomically (ptmcli/atomic.py). Without `replace`, an existing file is never replaced,
    even one that appeared while this image was computed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with writing(path, clobber=replace) as handle:
            image.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except FileExistsError:
        raise OutputExists(f"{path} exists", ["pass --force to replace it"]) from None


class ImageSink:
    """Writes each translation to its planned path and names it on stdout: `input<TAB>output`.

    A sink of the run loop: `targets[row]` is where row's picture goes. A picture that cannot be
    written is a failed input (the run goes on, or with `fail_fast` stops right there).
    """

    def __init__(self, stream: "TextIO", targets: Sequence[Path], side_by_side: bool = False,
                 replace: bool = False, fail_fast: bool = False):
        self.stream = stream
        self.targets = targets
        self.side_by_side = side_by_side
        self.replace = replace
        self.fail_fast = fail_fast

    def write(self, rows: Sequence[int], batch: "BatchOutput") -> "BatchOutput | None":
        from ptmcli.results import BatchOutput, Translation

        results = list(batch.results)
        changed = False
        for i, (row, result) in enumerate(zip(rows, results)):
            if not result.ok:
                continue
            problem = self.save(result, self.targets[row])
            if problem is not None:
                results[i], changed = Translation(result.path, error=problem), True
                if self.fail_fast:
                    break
        return BatchOutput(results) if changed else None

    def save(self, result: "Translation", target: Path) -> str | None:
        """None when written, else the one-line reason it was not."""
        fmt = output_format(target)
        picture = compose(result.image, fmt, result.source if self.side_by_side else None, result.alpha)
        try:
            write_image(picture, target, fmt, replace=self.replace)
        except OutputExists as exc:
            return f"{result.path}: output {exc.message} (pass --force to replace it)"
        except OSError as exc:
            return f"{result.path}: cannot write {target}: {exc.strerror or exc}"
        self.stream.write(f"{result.path}\t{target}\n")
        self.stream.flush()
        return None

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass  # every picture written is whole (write_image): nothing to tidy
