"""`ptm merge`: the result files of `--shard K/N` runs -> one file in input order.

HDF5 rows are copied into a new final-layout file rather than linked as a virtual dataset: the
merged file then stands alone (shard files can be deleted or moved) and equals, dataset for
dataset and attribute for attribute, the file one unsharded run writes. Every shard row carries
`input_index`, its position in the whole input list, which is what puts rows back in order.
"""

from __future__ import annotations

from pathlib import Path

from ptmcli.errors import NoInputs, OutputExists, UsageProblem
from ptmcli.sinks.resultfile import check_output, output_kind, results_format


def merge_results(sources: list[Path], dest: Path, partial: bool = False, force: bool = False) -> None:
    if not sources:
        raise UsageProblem("nothing to merge", ["name the shard files, e.g. ptm merge shard-*.h5 -o all.h5"])
    kinds = {output_kind(s) for s in sources}
    kind = output_kind(dest)
    if kinds != {kind}:
        raise UsageProblem("ptm merge joins files of one kind into a file of the same kind",
                           [f"sources: {', '.join(sorted(kinds))}; --output: {kind}"])
    for source in sources:
        if not source.is_file():
            raise NoInputs(f"{source}: no such file")
        if dest.exists() and source.resolve() == dest.resolve():
            raise UsageProblem(f"--output {dest} is also one of the files to merge")
    if len({s.resolve() for s in sources}) != len(sources):
        raise UsageProblem("a file is named twice")
    if dest.exists() and not force:
        raise OutputExists(f"{dest} already exists", ["--force replaces it"])
    check_output(str(dest), resume=False, force=True)
    # Each format checks every shard before it writes a byte (a damaged one is named, exit 2).
    results_format(dest).merge_files(sources, dest, kind, partial)
