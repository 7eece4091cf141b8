"""`--shard K/N`: each of N independent jobs takes its own deterministic part of the inputs.

An input belongs to shard K when a hash of its *key* modulo N is K-1. The key is the path
relative to the folder it was found in (or the path as given, for files named directly or on
stdin), so adding files elsewhere in the tree moves no other file to another shard, and the same
folder mounted at another place splits the same way. Shards are about 1/N each, not exactly.

Torch-free: job scripts call this before any model is loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ptmcli.errors import UsageProblem
from ptmcli.pipeline.inputs import KeyedInput


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as people count job-array tasks
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageProblem(f"--shard {text!r} is not K/N", ["e.g. --shard 3/8 for the third of eight jobs"])
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        hints = [f"K counts from 1 to N: --shard 1/{max(count, 1)} .. {max(count, 1)}/{max(count, 1)}"]
        if index == 0:
            hints.append("for 0-based task ids (Kubernetes JOB_COMPLETION_INDEX, SLURM --array=0-...) "
                         "use --shard $((ID + 1))/N")
        raise UsageProblem(f"--shard {text}: shard {index} of {count} does not exist", hints)
    return Shard(index, count)


def shard_key_hash(key: str) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and every job must agree.
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def in_shard(key: str, shard: Shard | None) -> bool:
    return shard is None or shard_key_hash(key) % shard.count == shard.index - 1


def select(inputs: list[KeyedInput], shard: Shard | None) -> list[KeyedInput]:
    return [entry for entry in inputs if in_shard(entry.key, shard)]
