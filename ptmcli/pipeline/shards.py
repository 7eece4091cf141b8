"""`--shard K/N`: each of N independent jobs takes its own deterministic part of the inputs.

An input belongs to shard K when a hash of its *key* modulo N is K-1. The key is the path
relative to the folder it was found in (or the path as given, for files named directly or on
stdin), so adding files elsewhere in the tree moves no other file to another shard, and the same
folder mounted at another place splits the same way. Shards are about 1/N each, not exactly.

Torch-free: job scripts call this before any model is loaded.
"""

from __future__ import annotations

import hashlib

from ptmcli.pipeline.inputs import KeyedInput
from ptmcli.results import Shard, parse_shard

__all__ = ["Shard", "in_shard", "parse_shard", "select", "shard_key_hash"]


def shard_key_hash(key: str) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and every job must agree.
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def in_shard(key: str, shard: Shard | None) -> bool:
    return shard is None or shard_key_hash(key) % shard.count == shard.index - 1


def select(inputs: list[KeyedInput], shard: Shard | None) -> list[KeyedInput]:
    return [entry for entry in inputs if in_shard(entry.key, shard)]
