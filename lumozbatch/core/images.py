"""Which image format a file holds, from its first bytes. Pure.

One reading for the whole program: downloads verify what they fetched with it (and name the
file's extension from it), provenance picks the way to embed and read metadata with it.
"""

from __future__ import annotations

__all__ = ["EXTENSIONS", "PNG_SIGNATURE", "image_kind"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The file extension (with its dot) of each kind.
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def image_kind(head: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` from a file's first bytes (12 are enough), else None."""
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None
