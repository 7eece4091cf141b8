"""Is an input a still picture or a video? Told from the first bytes of a file, not its name.

Videos are containers (MP4/MOV, Matroska/WebM, AVI, MPEG-TS) and pictures that move (animated
GIF, WebP and PNG): those are translated frame by frame into a video out. Torch-free and PyAV-free:
the plan of a run asks this of every input before anything heavy is imported.
"""

from __future__ import annotations

from pathlib import Path

from ptmcli.downloads import is_url

# Folders are searched for these as well as for pictures when a command takes videos.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts"})
# Suffixes of files that may move; their bytes decide (one frame is a still picture).
MAYBE_ANIMATED = frozenset({".gif", ".webp", ".png", ".apng"})

_HEAD = 4096


def is_video(path: str) -> bool:
    """True for a video container or an animated picture, or a file named as a video whose bytes
    are no known picture. A URL is judged by its name (its bytes are not fetched to plan a run);
    an unreadable file is not a video (it fails as a picture)."""
    if is_url(path):
        from urllib.parse import urlsplit

        suffix = Path(urlsplit(path).path).suffix.lower()
        return suffix in VIDEO_EXTENSIONS
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
            if container_kind(head) is not None:
                return True
            if head[:6] in (b"GIF87a", b"GIF89a"):
                return _gif_moves(handle)
    except OSError:
        return False
    # Bytes that announce nothing (junk, an empty or truncated file) named as a video are taken
    # for a video, so the error says what the user meant; a picture named .mp4 is still a picture.
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS and not head.startswith(_PICTURE_MAGIC)


_PICTURE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def container_kind(head: bytes) -> str | None:
    """The kind of video the first bytes of a file announce, or None for anything else."""
    if head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpegts"
    if head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) > 20 and head[20] & 0x02:
        return "webp"  # the VP8X header's animation flag
    if head[:8] == b"\x89PNG\r\n\x1a\n" and _png_has_animation(head):
        return "apng"
    return None


def _png_has_animation(head: bytes) -> bool:
    """An APNG has an acTL chunk before its first IDAT (the PNG spec's order)."""
    offset = 8
    while offset + 8 <= len(head):
        length = int.from_bytes(head[offset:offset + 4], "big")
        kind = head[offset + 4:offset + 8]
        if kind == b"acTL":
            return True
        if kind == b"IDAT":
            return False
        offset += 12 + length
    return False


def _gif_moves(handle) -> bool:
    """More than one frame in a GIF (Pillow reads up to the second frame only)."""
    from ptmcli.pixels.decode import quiet_decoders

    quiet_decoders()
    try:
        from PIL import Image

        handle.seek(0)
        with Image.open(handle) as image:
            return bool(getattr(image, "is_animated", False))
    except Exception:  # noqa: BLE001 - a GIF Pillow cannot read fails later as a picture, with its line
        return False
