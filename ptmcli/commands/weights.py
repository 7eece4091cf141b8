"""ptm weights: list, fetch, verify and add the weight files behind every model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import Format, FormatOpt, OfflineOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, UsageProblem
from ptmcli.pipeline.signals import StopOnSignal

app = typer.Typer(
    help="Weight files: where ptm looks, what it has, and fetching, verifying or adding one.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("list")
def list_files(
    pattern: Annotated[Optional[str], typer.Argument(help="Only names or file names matching this glob, e.g. 'horse*'.")] = None,
    fmt: FormatOpt = Format.auto,
) -> None:
    """Every weight file ptm knows, the search order, and each file's state.

    State: present or missing; check: verified (sha256), verified (sha256 prefix) or verified (git
    blob id), saying which published digest the file matches; pinned (matches the SHA-256 ptm
    recorded for a file with none published); unchecked (present, not hashed yet: run `ptm weights
    verify`); mismatch; or no published hash.

    text and table show the search order, then the files; json holds both ({"search_order",
    "files"}); jsonl, csv and tsv hold the files only, one record each.

    Examples:

      ptm weights list

      ptm weights list 'horse*' --format json
    """
    from ptmcli.models.registry import known_weight_files
    from ptmcli.models.weights import pinned_sha256, search_order, state_of
    from ptmcli.sinks.formats import Column, pick, write_json, write_listing

    states = [state_of(w) for w in known_weight_files(pattern)]
    order = search_order()
    records = []
    for st in states:
        w = st.weight
        records.append({
            "name": w.name, "filename": w.filename, "present": st.path is not None,
            "path": str(st.path) if st.path else None, "check": st.check, "size": w.size,
            "sha256": w.sha256, "sha256_prefix": w.sha256_prefix, "git_blob_sha1": w.git_blob_sha1,
            "pinned_sha256": pinned_sha256(w), "url": w.url, "source": w.source, "license": w.license,
        })
    out = sys.stdout
    chosen = pick(fmt, out)
    if chosen == "json":
        write_json({"search_order": [{"label": label, "place": place} for label, place in order],
                    "files": records}, out)
    elif chosen in ("jsonl", "csv", "tsv"):
        keys = ("name", "present", "check", "size", "sha256", "sha256_prefix", "git_blob_sha1", "pinned_sha256",
                "path", "filename", "url")
        write_listing(records, [Column(k) for k in keys], chosen, out)
    else:
        rows = [(r["name"], "present" if r["present"] else "missing", r["check"] if r["present"] else "-",
                 f"{r['size']:,}" if r["size"] else "-", _expected(r), r["path"] or r["filename"],
                 r["url"] or st.weight.install_hint or "-")
                for r, st in zip(records, states)]
        if chosen == "table":
            _tables(order, rows, out)
        else:
            _text(order, rows, out)
    out.flush()


_HEADINGS = ("NAME", "STATE", "CHECK", "SIZE", "SHA-256", "WHERE", "SOURCE URL")


def _expected(record: dict) -> str:
    """The digest a copy is checked against, shortened for people."""
    if record["sha256"]:
        expected = record["sha256"][:16]
    elif record["sha256_prefix"]:
        expected = f"{record['sha256_prefix']} (prefix)"
    elif record["pinned_sha256"]:
        expected = f"{record['pinned_sha256'][:16]} (pinned)"
    else:
        expected = "none published"
    if record["git_blob_sha1"]:
        expected += f" or git blob {record['git_blob_sha1'][:16]}"
    return expected


def _text(order: list[tuple[str, str]], rows: list[tuple], out) -> None:
    from ptmcli.sinks.formats import aligned

    # Columns padded with spaces, the last one (URLs) left free: for reading, `--format tsv` for programs.
    out.write("Search order (first hit wins):\n")
    width = max(len(label) for label, _ in order)
    for number, (label, place) in enumerate(order, 1):
        out.write(f"  {number}. {label:<{width}}  {place}\n")
    out.write(f"\nKnown weight files ({len(rows)}; present {sum(row[1] == 'present' for row in rows)}):\n")
    out.write(aligned([_HEADINGS, *rows]))


def _tables(order: list[tuple[str, str]], rows: list[tuple], out) -> None:
    from ptmcli.sinks.formats import Column, write_listing

    write_listing([{"#": str(n), "label": label, "place": place} for n, (label, place) in enumerate(order, 1)],
                  [Column("#", right=True), Column("label"), Column("place")], "table", out,
                  title="Search order (first hit wins)")
    keys = ("name", "state", "check", "size", "expected digest", "where", "source")
    write_listing([dict(zip(keys, row)) for row in rows], [Column(key, right=key == "size") for key in keys],
                  "table", out, title=f"Known weight files ({len(rows)}; present "
                  f"{sum(row[1] == 'present' for row in rows)})")


@app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="A name from `ptm weights list` (e.g. horse2zebra, resnet101).", show_default=False)],
    allow_unverified: Annotated[bool, typer.Option("--allow-unverified", help="Download a file that has no published checksum, and pin the SHA-256 received.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a good copy is here.")] = False,
    offline: OfflineOpt = False,
) -> None:
    """Download a weight file to a .part file, check it against its published digests, then rename it into place.

    Prints the file's path. A failed or cut-off download leaves nothing that looks complete.

    Examples:

      ptm weights fetch horse2zebra

      ptm weights fetch horse2zebra_cyclegan --allow-unverified
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_weight_file
    from ptmcli.sinks.progress import note_line, transfer_progress

    weight = get_weight_file(name)
    found = weight_files.find(weight)
    if found is not None and not force:
        weight_files.verify(found, weight)
        sys.stdout.write(f"{found}\n")
        return
    if weight_files.offline_requested(offline):
        raise UsageProblem(f"cannot fetch {weight.filename} offline (--offline or PTM_OFFLINE=1)",
                           ["run it online, or copy a file in with `ptm weights add`"])
    # A signal stops the download at once; the .part file is removed on the way out.
    with StopOnSignal(at_once=True), transfer_progress(f"downloading {weight.filename}") as on_bytes:
        path = weight_files.fetch(weight, allow_unverified=allow_unverified, progress=on_bytes)
    first = weight_files.find(weight)
    if first is not None and first.resolve() != path.resolve():
        note_line(f"{first} comes earlier in the search order and is used instead; delete it to use the new download")
    sys.stdout.write(f"{path}\n")


@app.command("verify")
def verify(
    name: Annotated[Optional[str], typer.Argument(help="One name from `ptm weights list`; default: every file present.")] = None,
    fmt: FormatOpt = Format.auto,
) -> None:
    """Hash weight files again (ignoring the remembered digests) and compare them with the expected ones.

    A file passes when it matches any one published digest (its SHA-256, or a git blob id where
    one is recorded); the check column says which: verified (sha256), verified (git blob id), ...
    In a pipe (and with --format text) prints `check<TAB>name<TAB>path<TAB>sha256` per file, as it
    goes; exits 1 if any file does not match.

    Examples:

      ptm weights verify

      ptm weights verify horse2zebra --format json
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_weight_file, known_weight_files
    from ptmcli.sinks.formats import Column, RowStream, pick, write_listing
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
    chosen = pick(fmt, sys.stdout)
    # text streams a line per file as it is hashed (a few seconds each for the big ones).
    lines = RowStream("text", sys.stdout) if chosen == "text" else None
    records = []
    bad = 0
    for weight in candidates:
        state = weight_files.state_of(weight, reread=True)
        record = {"check": state.check, "name": weight.name, "path": str(state.path), "sha256": state.sha256,
                  "git_blob_sha1": state.git_blob_sha1}
        if lines is not None:
            lines.rows([[state.check, weight.name, state.path, state.sha256]])
        records.append(record)
        if state.check == "mismatch":
            if weight.published:
                fix = f"`ptm weights fetch {weight.name} --force` replaces it"
            else:
                fix = (f"it changed since ptm pinned it; `ptm weights add {weight.name} FILE --force` "
                       "pins a copy you trust")
            verdict = state.verdict
            error_line(f"{state.path}: does not match the expected {' or '.join(c.title for c in verdict.checks)} "
                       f"of {weight.filename} ({verdict.describe()}); {fix}")
            bad += 1
    if lines is None:
        write_listing(records, [Column("check"), Column("name"), Column("path"), Column("sha256")], chosen, sys.stdout)
    sys.stdout.flush()
    raise typer.Exit(EXIT_SOME_FAILED if bad else EXIT_OK)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name from `ptm weights list`.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="The weight file you brought.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace a different copy already in the user cache.")] = False,
) -> None:
    """Check a weight file you brought and copy it into the user cache under its known name.

    A file with a published digest must match it; models that say how (the generators) also check
    that it loads into its network, and a file with none published (horse2zebra_cyclegan) must, and
    ptm pins its SHA-256. Prints where the copy is.

    Examples:

      ptm weights add horse2zebra /media/stick/horse2zebra_0.4.0.pth

      ptm weights add resnet101 ~/Downloads/resnet101-cd907fc2.pth
    """
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_model, get_weight_file

    weight = get_weight_file(name)
    check = get_model(weight.name).check_loads
    with StopOnSignal(at_once=True):  # the copy's temporary file is removed on the way out
        destination = weight_files.add_file(weight, file, force=force, check=check)
    sys.stdout.write(f"{destination}\n")
