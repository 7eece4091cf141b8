"""The raw checks an HDF5 file passes before HDF5 reads any of its text: HDF5 trusts the lengths,
heaps and types it finds, and a damaged one makes it allocate gigabytes, loop forever or crash."""

from __future__ import annotations

from pathlib import Path

from ptmcli.sinks.resultrows import check

# A path or class name longer than this is damage: reading a variable-length string makes HDF5
# allocate the length its heap reference claims (4 GB for a 254-byte file), before it reads.
_MOST_TEXT_BYTES = 1 << 20


def check_text_lengths(dataset, path: Path) -> None:
    """Every variable-length string of `dataset` claims at most _MOST_TEXT_BYTES (its stored
    references are read raw, so HDF5 never sees a claim larger than that)."""
    import numpy as np

    name = dataset.name.lstrip("/")
    check(dataset.ndim == 1, f"{name} is not a list of text")
    rows = dataset.shape[0]
    if not rows or not h5py_vlen(dataset):
        return
    if dataset.chunks is None:
        offset = dataset.id.get_offset()
        if offset is None:
            return  # never written: it reads as empty strings
        with open(path, "rb") as handle:
            handle.seek(offset)
            pieces = [(handle.read(dataset.id.get_storage_size()), rows)]
    else:
        pieces = [(_raw_chunk(dataset, i), dataset.chunks[0]) for i in range(dataset.id.get_num_chunks())]
    for raw, count in pieces:
        # A reference: a 4-byte length, then the heap's address (8 bytes, or 4) and a 4-byte index.
        step = len(raw) // max(count, 1)
        check(step in (12, 16), f"{name} holds text references of {step} bytes")
        table = np.frombuffer(raw[:step * count], dtype=np.uint8).reshape(-1, step)
        longest = int(np.ascontiguousarray(table[:, :4]).view("<u4").max(initial=0))
        check(longest <= _MOST_TEXT_BYTES, f"{name} claims a text of {longest:,} bytes")


def check_text_heaps(path: Path) -> None:
    """Walk every global heap collection (where HDF5 keeps variable-length text) and refuse one
    whose objects do not tile it exactly: HDF5 itself loops forever on some (a free-space object
    of size 0), without a word, when an attribute or a path is read."""
    import mmap
    import struct

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(b"GCOL")
        while at >= 0:
            if data[at + 4:at + 8] != b"\x01\0\0\0" or at + 16 > len(data):
                at = data.find(b"GCOL", at + 4)  # these bytes inside some text, not a heap
                continue
            size = struct.unpack_from("<Q", data, at + 8)[0]
            check(16 < size <= len(data) - at, f"a text heap at byte {at} claims {size:,} bytes")
            _check_heap_objects(data, at, size)
            at = data.find(b"GCOL", at + size)


def _check_heap_objects(data, at: int, size: int) -> None:
    import struct

    end, place = at + size, at + 16
    while place + 16 <= end:
        index, _, _, length = struct.unpack_from("<HHIQ", data, place)
        if index == 0:  # free space: the rest of the collection, exactly
            check(place + length == end, f"the text heap at byte {at} is damaged")
            return
        place += 16 + (length + 7) // 8 * 8
        check(place <= end, f"the text heap at byte {at} is damaged")
    check(end - place < 16, f"the text heap at byte {at} is damaged")


# HDF5 decodes a type nested this deep in compounds, arrays and variable-length types; ptm's
# own files nest one level (a text is a sequence of characters), tensor files a few.
_MOST_TYPE_NESTING = 32


def check_datatype(tid, what: str, depth: int = 0) -> None:
    """Refuse a stored type whose variable-length kind is neither a sequence (0) nor a text (1).

    HDF5 2.0 decodes any kind from the type's flags and h5py sees a sequence, which compares
    equal to a real one; reading a value then sets up no memory conversion and calls HDF5's disk
    writer without a file: a segmentation fault (fuzz/README.md, "Findings"). The kind survives
    only in the type's encoding (H5Tencode: two header bytes, then the type message: class and
    version, then the flags)."""
    import h5py

    check(depth <= _MOST_TYPE_NESTING, f"{what} has a type nested more than {_MOST_TYPE_NESTING} deep")
    cls = tid.get_class()
    if cls == h5py.h5t.VLEN or (cls == h5py.h5t.STRING and tid.is_variable_str()):
        raw = tid.encode()
        kind = raw[3] & 0x0F if len(raw) > 3 and raw[2] & 0x0F == h5py.h5t.VLEN else -1
        check(kind == (1 if cls == h5py.h5t.STRING else 0),
              f"{what} has a variable-length type of unknown kind {kind}")
    if cls in (h5py.h5t.VLEN, h5py.h5t.ARRAY):
        check_datatype(tid.get_super(), what, depth + 1)
    elif cls == h5py.h5t.COMPOUND:
        for member in range(tid.get_nmembers()):
            check_datatype(tid.get_member_type(member), what, depth + 1)


def check_attribute_types(obj) -> None:
    """check_datatype for every attribute of an open h5py object, before any value is read."""
    import h5py

    for index in range(h5py.h5a.get_num_attrs(obj.id)):
        attr = h5py.h5a.open(obj.id, index=index)
        check_datatype(attr.get_type(), f"its {attr.name.decode('utf-8', 'replace')} attribute")


def h5py_vlen(dataset) -> bool:
    import h5py

    info = h5py.check_string_dtype(dataset.dtype)
    return info is not None and info.length is None


def _raw_chunk(dataset, index: int) -> bytes:
    """One stored chunk of a dataset, inflated; gzip is the only filter ptm writes on text."""
    import zlib

    chunk = dataset.id.get_chunk_info(index)
    filters = dataset._filters
    check(set(filters) <= {"gzip"}, f"{dataset.name.lstrip('/')} is stored with {', '.join(filters)}")
    _, raw = dataset.id.read_direct_chunk(chunk.chunk_offset)
    if "gzip" in filters and not chunk.filter_mask & 1:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(raw, dataset.chunks[0] * 16 + 16)  # no more than one chunk holds
    return raw
