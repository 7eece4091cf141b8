"""ptm weights: list, fetch, verify and add the weight files behind every model."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import OfflineOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, UsageProblem

app = typer.Typer(
    help="Weight files: where ptm looks, what it has, and fetching, verifying or adding one.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class ListFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("list")
def list_files(
    pattern: Annotated[Optional[str], typer.Argument(help="Only names or file names matching this glob, e.g. 'horse*'.")] = None,
    fmt: Annotated[ListFormat, typer.Option("--format", "-f", help="text for people, json for programs.", case_sensitive=False)] = ListFormat.text,
) -> None:
    """Every weight file ptm knows, the search order, and each file's state.

    State: present or missing; check: verified (matches the published SHA-256), pinned (matches
    the SHA-256 ptm recorded for a file with none published), unchecked (present, not hashed yet:
    run `ptm weights verify`), mismatch, or no published hash.

    Examples:

      ptm weights list

      ptm weights list 'horse*' --format json
    """
    from ptmcli.models.registry import known_weight_files
    from ptmcli.models.weights import pinned_sha256, search_order, state_of

    states = [state_of(w) for w in known_weight_files(pattern)]
    order = search_order()
    if fmt is ListFormat.json:
        records = []
        for st in states:
            w = st.weight
            records.append({
                "name": w.name, "filename": w.filename, "present": st.path is not None,
                "path": str(st.path) if st.path else None, "check": st.check, "size": w.size,
                "sha256": w.sha256, "sha256_prefix": w.sha256_prefix, "pinned_sha256": pinned_sha256(w),
                "url": w.url, "source": w.source, "license": w.license,
            })
        json.dump({"search_order": [{"label": label, "place": place} for label, place in order],
                   "files": records}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return

    out = sys.stdout
    out.write("Search order (first hit wins):\n")
    width = max(len(label) for label, _ in order)
    for number, (label, place) in enumerate(order, 1):
        out.write(f"  {number}. {label:<{width}}  {place}\n")
    out.write(f"\nKnown weight files ({len(states)}; present {sum(s.path is not None for s in states)}):\n")
    rows = [("NAME", "STATE", "CHECK", "SIZE", "SHA-256", "WHERE", "SOURCE URL")]
    for st in states:
        w = st.weight
        expected = w.sha256[:16] if w.sha256 else (f"{w.sha256_prefix} (prefix)" if w.sha256_prefix else
                                                   (f"{pinned_sha256(w)[:16]} (pinned)" if pinned_sha256(w) else "none published"))
        rows.append((
            w.name, "present" if st.path else "missing", st.check if st.path else "-",
            f"{w.size:,}" if w.size else "-", expected, str(st.path) if st.path else w.filename,
            w.url or w.install_hint or "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] + "\n")
    out.flush()


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="A name from `ptm weights list` (e.g. horse2zebra, resnet101).", show_default=False)],
    allow_unverified: Annotated[bool, typer.Option("--allow-unverified", help="Download a file that has no published checksum, and pin the SHA-256 received.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a good copy is here.")] = False,
    offline: OfflineOpt = False,
) -> None:
    """Download a weight file to a .part file, check its size and SHA-256, then rename it into place.

    Prints the file's path. A failed or cut-off download leaves nothing that looks complete.

    Examples:

      ptm weights fetch horse2zebra

      ptm weights fetch horse2zebra_cyclegan --allow-unverified
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_weight_file
    from ptmcli.sinks.progress import transfer_progress

    weight = get_weight_file(name)
    found = weight_files.find(weight)
    if found is not None and not force:
        weight_files.verify(found, weight)
        sys.stdout.write(f"{found}\n")
        return
    if weight_files.offline_requested(offline):
        raise UsageProblem(f"cannot fetch {weight.filename} offline (--offline or PTM_OFFLINE=1)",
                           ["run it online, or copy a file in with `ptm weights add`"])
    with transfer_progress(f"downloading {weight.filename}") as on_bytes:
        path = weight_files.fetch(weight, allow_unverified=allow_unverified, progress=on_bytes)
    first = weight_files.find(weight)
    if first is not None and first.resolve() != path.resolve():
        sys.stderr.write(f"ptm: note: {first} comes earlier in the search order and is used instead; "
                         "delete it to use the new download\n")
    sys.stdout.write(f"{path}\n")


@app.command("verify")
def verify(
    name: Annotated[Optional[str], typer.Argument(help="One name from `ptm weights list`; default: every file present.")] = None,
) -> None:
    """Hash weight files again (ignoring the remembered hashes) and compare them with the expected SHA-256.

    Prints `check<TAB>name<TAB>path<TAB>sha256` per file; exits 1 if any file does not match.

    Examples:

      ptm weights verify

      ptm weights verify horse2zebra
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_weight_file, known_weight_files
    from ptmcli.sinks.progress import error_line

    if name is not None:
        weight = get_weight_file(name)
        if weight_files.find(weight) is None:
            raise weight_files.not_found(weight, offline=weight_files.offline_requested())
        candidates = [weight]
    else:
        candidates = [w for w in known_weight_files() if weight_files.find(w) is not None]
        if not candidates:
            sys.stderr.write("ptm: no known weight files on this machine (`ptm weights list` shows where ptm looks)\n")
    bad = 0
    for weight in candidates:
        state = weight_files.state_of(weight, reread=True)
        sys.stdout.write(f"{state.check}\t{weight.name}\t{state.path}\t{state.sha256}\n")
        if state.check == "mismatch":
            if weight.expected_hash():
                fix = f"`ptm weights fetch {weight.name} --force` replaces it"
            else:
                fix = (f"it changed since ptm pinned it; `ptm weights add {weight.name} FILE --force` "
                       "pins a copy you trust")
            error_line(f"{state.path}: does not match the expected SHA-256 of {weight.filename}; {fix}")
            bad += 1
    sys.stdout.flush()
    raise typer.Exit(EXIT_SOME_FAILED if bad else EXIT_OK)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name from `ptm weights list`.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="The weight file you brought.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace a different copy already in the user cache.")] = False,
) -> None:
    """Check a weight file you brought and copy it into the user cache under its known name.

    A file with a published SHA-256 must match it; one without (horse2zebra_cyclegan) must load into
    its network, and ptm pins its SHA-256. Prints where the copy is.

    Examples:

      ptm weights add horse2zebra /media/stick/horse2zebra_0.4.0.pth

      ptm weights add resnet101 ~/Downloads/resnet101-cd907fc2.pth
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import GENERATOR_WEIGHTS, get_weight_file

    weight = get_weight_file(name)
    check = None
    if weight.name in GENERATOR_WEIGHTS:
        def check(path: Path) -> None:
            from ptmcli.models.cyclegan import BOOK_SHAPE, load_generator

            load_generator(path, f"the {weight.name} generator", require_shape=BOOK_SHAPE)
    destination = weight_files.add_file(weight, file, force=force, check=check)
    sys.stdout.write(f"{destination}\n")
