"""`ptm merge`: the result files of `--shard K/N` runs -> one file in input order.

HDF5 rows are copied into a new final-layout file rather than linked as a virtual dataset: the
merged file then stands alone (shard files can be deleted or moved) and equals, dataset for
dataset and attribute for attribute, the file one unsharded run writes. Every shard row carries
`input_index`, its position in the whole input list, which is what puts rows back in order.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ptmcli.errors import NoInputs, OutputExists, OutputUnwritable, UsageProblem
from ptmcli.results import parse_shard
from ptmcli.sinks.hdf5_results import MergePlan, describe_file, mismatches, open_h5, read_info, write_final
from ptmcli.sinks.resultfile import PENDING, check_output, output_kind
from ptmcli.sinks.text_results import atomic_write_text, read_text_records, serialize


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
    if kind == "hdf5":
        _merge_hdf5(sources, dest, partial)
    else:
        _merge_text(sources, dest, kind)


def _shard_of(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    shard = parse_shard(text)
    return shard.index, shard.count


def _merge_hdf5(sources: list[Path], dest: Path, partial: bool) -> None:
    import numpy as np

    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open_h5(s, "r")) for s in sources]
        for f, source in zip(files, sources):
            read_info(f, source)
        base = describe_file(files[0])
        totals = {int(f.attrs["inputs_total"]) for f in files}
        for f, source in zip(files[1:], sources[1:]):
            problems = mismatches(describe_file(f), base)
            if problems:
                raise OutputUnwritable(f"{source} was made differently from {sources[0]}",
                                       [p.replace("this run", str(sources[0])) for p in problems])
        if len(totals) > 1:
            raise OutputUnwritable("these files are shards of different input lists "
                                   f"({', '.join(str(t) for t in sorted(totals))} inputs)",
                                   ["run every shard over the same inputs"])
        total = totals.pop()

        shards = [_shard_of(str(f.attrs.get("shard", ""))) for f in files]
        if len(files) > 1 and None in shards:
            lone = sources[shards.index(None)]
            raise OutputUnwritable(f"{lone} is not a shard (it was made without --shard)")
        counts = {count for _, count in filter(None, shards)}
        if len(counts) > 1:
            raise OutputUnwritable(f"these files split the inputs into different numbers of shards ({sorted(counts)})")
        have = sorted(index for index, _ in filter(None, shards))
        if len(set(have)) != len(have):
            twice = sorted({k for k in have if have.count(k) > 1})
            raise OutputUnwritable(f"shard {twice[0]} is named twice")
        missing = sorted(set(range(1, counts.pop() + 1)) - set(have)) if counts else []
        if missing and not partial:
            raise OutputUnwritable(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                f"of {len(have) + len(missing)} missing",
                ["run them and merge again, or --partial to merge what is here"],
            )
        unfinished = [(s, int((f["status"][...] == PENDING).sum())) for f, s in zip(files, sources)]
        unfinished = [(s, n) for s, n in unfinished if n]
        if unfinished and not partial:
            source, left = unfinished[0]
            raise OutputUnwritable(
                f"{source} is unfinished ({left:,} inputs not classified yet)",
                ["rerun its shard with --resume, or --partial to merge it as it is"],
            )

        positions = [f["input_index"][...] for f in files]
        which = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(positions)])
        rows = np.concatenate([np.arange(len(p), dtype=np.int64) for p in positions])
        merged = np.concatenate(positions)
        order = np.argsort(merged, kind="stable")
        doubled = np.flatnonzero(np.diff(merged[order]) == 0)
        if len(doubled):
            position = int(merged[order][doubled[0]])
            raise OutputUnwritable(f"input {position} appears in more than one file",
                                   ["merge each shard once, from runs over the same inputs"])
        if not partial and len(merged) != total:
            raise OutputUnwritable(f"the files hold {len(merged):,} of {total:,} inputs",
                                   ["merge every shard, or --partial"])
        attrs = {key: files[0].attrs[key] for key in files[0].attrs}
        whole = not missing
        attrs["shard"] = "" if whole else f"{'+'.join(map(str, have))}/{len(have) + len(missing)}"
        write_final(dest, attrs, MergePlan(files, which[order], rows[order]),
                    complete=whole and not unfinished)


def _merge_text(sources: list[Path], dest: Path, fmt: str) -> None:
    records = []
    header = None
    for source in sources:
        found, _ = read_text_records(source, fmt)
        if fmt != "jsonl":
            first = source.read_text(encoding="utf-8", errors="surrogateescape").split("\n", 1)[0]
            if header is not None and first != header:
                raise OutputUnwritable(f"{source} has other columns than {sources[0]}",
                                       ["merge files made with the same --top"])
            header = first
        records += [(_position(fmt, r), r) for r in found]
    records.sort(key=lambda pair: pair[0])
    for (a, _), (b, _) in zip(records, records[1:]):
        if a == b:
            raise OutputUnwritable(f"input {a} appears more than once",
                                   ["merge each shard once; an interrupted shard is put in order by --resume"])
    lines = [] if fmt == "jsonl" else [header + "\n"]
    lines += [serialize(fmt, record) for _, record in records]
    atomic_write_text(dest, "".join(lines))


def _position(fmt: str, record) -> int:
    return int(record["input_index"] if fmt == "jsonl" else record[0])

