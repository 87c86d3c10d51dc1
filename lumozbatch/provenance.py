"""Provenance: which manifest and commit made a batch, and the parameters inside each image.

``embed_metadata`` writes a job's parameters into a downloaded image where image tools look
for them, at the byte level, WITHOUT re-encoding the pixels (re-encoding a lossy JPEG or WebP
would degrade the paid output):

- PNG: an ``iTXt`` chunk ``lumozbatch`` (the JSON) and a ``parameters`` text chunk (the
  "prompt / Negative prompt: / Steps: ..., Seed: ..." text that A1111-style tools read),
  inserted right after ``IHDR``.
- JPEG: an XMP ``APP1`` segment (the JSON as ``lumozbatch:meta``, the parameters text as
  ``dc:description``) and, unless the file already has EXIF, an EXIF ``APP1`` segment whose
  ``UserComment`` is the parameters text; inserted after ``SOI`` and any ``APP0`` (JFIF).
- WebP: ``EXIF`` and ``XMP `` chunks with the same contents; a simple (``VP8 ``/``VP8L``)
  file becomes an extended one (a ``VP8X`` header is added, the bitstream is untouched).

Existing metadata is kept: an existing XMP packet gets our description added (ours replaced
when embedding again), existing EXIF is left alone. ``read_metadata`` reads the JSON back.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

from lumozbatch.core.images import PNG_SIGNATURE, image_kind

__all__ = [
    "METADATA_KEY",
    "XMP_NAMESPACE",
    "embed_bytes",
    "embed_metadata",
    "git_info",
    "image_kind",
    "parameters_text",
    "read_metadata",
    "read_metadata_bytes",
]

METADATA_KEY = "lumozbatch"
XMP_NAMESPACE = "https://lumozbatch.dev/ns/1.0/"

_PNG_SIG = PNG_SIGNATURE
_XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_EXIF_HEADER = b"Exif\x00\x00"
_JPEG_SEGMENT_MAX = 65533  # payload bytes an APPn segment can hold (length field is 16 bits)

_OUR_DESCRIPTION = re.compile(
    r"<rdf:Description[^>]*xmlns:lumozbatch=\"" + re.escape(XMP_NAMESPACE) + r"\".*?</rdf:Description>\s*",
    re.S,
)
_OUR_META = re.compile(r"<lumozbatch:meta>(.*?)</lumozbatch:meta>", re.S)


# ---- what goes in ---------------------------------------------------------------------

_LABELS = {
    "num_inference_steps": "Steps",
    "seed": "Seed",
    "guidance": "Guidance",
    "guidance_scale": "CFG scale",
    "aspect_ratio": "Aspect ratio",
}


def parameters_text(meta: dict[str, Any]) -> str:
    """The A1111-style ``parameters`` text: prompt, negative prompt, then ``Key: value`` pairs."""
    params = dict(meta.get("params") or {})
    prompt = str(params.pop("prompt", ""))
    negative = params.pop("negative_prompt", None)
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    pairs = [f"{_LABELS.get(k, k.replace('_', ' ').capitalize())}: {v}" for k, v in params.items()]
    if meta.get("model"):
        pairs.append(f"Model: {meta['model']}")
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def _json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _xmp_description(meta: dict[str, Any], *, with_dc: bool) -> str:
    dc = ""
    if with_dc:
        text = html.escape(parameters_text(meta), quote=False)
        dc = (
            "<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
            f"{text}</rdf:li></rdf:Alt></dc:description>"
        )
    return (
        f"<rdf:Description rdf:about=\"\" xmlns:lumozbatch=\"{XMP_NAMESPACE}\""
        " xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
        f"<lumozbatch:meta>{html.escape(_json(meta), quote=False)}</lumozbatch:meta>{dc}"
        "</rdf:Description>\n"
    )


def _xmp_packet(meta: dict[str, Any], existing: bytes | None) -> bytes:
    """A new XMP packet, or ``existing`` with our description added (replacing ours)."""
    if existing:
        text = existing.decode("utf-8", "replace")
        text = _OUR_DESCRIPTION.sub("", text)
        if "</rdf:RDF>" in text:
            # Someone else's packet: add ours beside theirs; their dc:description stays theirs.
            has_dc = "dc:description" in text
            ours = _xmp_description(meta, with_dc=not has_dc)
            return text.replace("</rdf:RDF>", ours + "</rdf:RDF>", 1).encode("utf-8")
    return (
        "<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
        "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">"
        "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
        + _xmp_description(meta, with_dc=True)
        + "</rdf:RDF></x:xmpmeta>\n<?xpacket end=\"w\"?>"
    ).encode("utf-8")


def _exif_user_comment(text: str) -> bytes:
    """A minimal big-endian TIFF: IFD0 -> Exif IFD -> UserComment (UNICODE, UTF-16BE).

    Big-endian, because readers (piexif, exiftool) agree on UTF-16BE only then.
    """
    comment = b"UNICODE\x00" + text.encode("utf-16-be")
    exif_ifd = 8 + 2 + 12 + 4
    data_at = exif_ifd + 2 + 12 + 4
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, exif_ifd) + struct.pack(">I", 0)
    tiff += struct.pack(">H", 1) + struct.pack(">HHII", 0x9286, 7, len(comment), data_at)
    tiff += struct.pack(">I", 0) + comment
    return tiff


def _is_our_exif(tiff: bytes) -> bool:
    """An EXIF block ``_exif_user_comment`` wrote (only a UserComment): ours to replace."""
    return tiff[:32] == _exif_user_comment("")[:32]


# ---- PNG ------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = 8, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(data):
            raise ValueError("truncated PNG chunk")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError("PNG without IHDR or IEND: not a whole image")
    return chunks


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_text_key(kind: bytes, body: bytes) -> bytes | None:
    if kind in (b"tEXt", b"iTXt", b"zTXt"):
        return body.split(b"\x00", 1)[0]
    return None


def _itxt(key: str, text: str) -> bytes:
    return _png_chunk(b"iTXt", key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _text_chunk(key: str, text: str) -> bytes:
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _itxt(key, text)


def _embed_png(data: bytes, meta: dict[str, Any]) -> bytes:
    chunks = _png_chunks(data)
    ours = {METADATA_KEY.encode(), b"parameters"}
    kept = [(k, b) for k, b in chunks if _png_text_key(k, b) not in ours]
    out = [_PNG_SIG, _png_chunk(*kept[0])]
    out.append(_itxt(METADATA_KEY, _json(meta)))
    out.append(_text_chunk("parameters", parameters_text(meta)))
    out.extend(_png_chunk(k, b) for k, b in kept[1:])
    return b"".join(out)


def _read_png(data: bytes) -> dict[str, Any] | None:
    for kind, body in _png_chunks(data):
        if _png_text_key(kind, body) != METADATA_KEY.encode():
            continue
        if kind == b"iTXt":
            _key, rest = body.split(b"\x00", 1)
            compressed = rest[0] == 1
            _lang, rest = rest[2:].split(b"\x00", 1)
            _translated, text = rest.split(b"\x00", 1)
            return json.loads(zlib.decompress(text) if compressed else text)
        if kind == b"tEXt":
            return json.loads(body.split(b"\x00", 1)[1].decode("latin-1"))
        if kind == b"zTXt":
            return json.loads(zlib.decompress(body.split(b"\x00", 1)[1][1:]))
    return None


# ---- JPEG -----------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Marker segments before the scan, and everything from SOS (or the first
    length-less marker) on, untouched."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, segments = 2, []
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or 0xD0 <= marker <= 0xD9 or marker == 0x01:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("truncated JPEG segment")
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return segments, data[pos:]


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body


def _embed_jpeg(data: bytes, meta: dict[str, Any]) -> bytes:
    segments, rest = _jpeg_segments(data)
    old_xmp = next(
        (b[len(_XMP_APP1_HEADER) :] for m, b in segments if m == 0xE1 and b.startswith(_XMP_APP1_HEADER)),
        None,
    )
    def ours(marker: int, body: bytes) -> bool:
        return marker == 0xE1 and (
            body.startswith(_XMP_APP1_HEADER)
            or (body.startswith(_EXIF_HEADER) and _is_our_exif(body[len(_EXIF_HEADER) :]))
        )

    kept = [(m, b) for m, b in segments if not ours(m, b)]
    has_exif = any(m == 0xE1 and b.startswith(_EXIF_HEADER) for m, b in kept)
    new: list[tuple[int, bytes]] = []
    if not has_exif:
        exif = _EXIF_HEADER + _exif_user_comment(parameters_text(meta))
        if len(exif) <= _JPEG_SEGMENT_MAX:
            new.append((0xE1, exif))
    xmp = _XMP_APP1_HEADER + _xmp_packet(meta, old_xmp)
    if len(xmp) > _JPEG_SEGMENT_MAX:
        raise ValueError("metadata too large for a JPEG XMP segment")
    # JFIF wants its APP0 first, and EXIF readers expect EXIF before XMP.
    at = 0
    while at < len(kept) and kept[at][0] == 0xE0:
        at += 1
    exif_at = at
    while exif_at < len(kept) and kept[exif_at][0] == 0xE1:
        exif_at += 1
    ordered = kept[:at] + new + kept[at:exif_at] + [(0xE1, xmp)] + kept[exif_at:]
    return b"\xff\xd8" + b"".join(_jpeg_segment(m, b) for m, b in ordered) + rest


def _read_xmp(packet: bytes) -> dict[str, Any] | None:
    match = _OUR_META.search(packet.decode("utf-8", "replace"))
    return json.loads(html.unescape(match.group(1))) if match else None


def _read_jpeg(data: bytes) -> dict[str, Any] | None:
    segments, _ = _jpeg_segments(data)
    for marker, body in segments:
        if marker == 0xE1 and body.startswith(_XMP_APP1_HEADER):
            found = _read_xmp(body[len(_XMP_APP1_HEADER) :])
            if found is not None:
                return found
    return None


# ---- WebP -----------------------------------------------------------------------------


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = min(len(data), 8 + riff_size)
    pos, chunks = 12, []
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if len(body) != size:
            raise ValueError("truncated WebP chunk")
        chunks.append((kind, body))
        pos += 8 + size + (size & 1)
    if not chunks:
        raise ValueError("empty WebP")
    return chunks


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _webp_canvas(kind: bytes, body: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's bitstream."""
    if kind == b"VP8 ":
        if body[3:6] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", body[6:10])
        return w & 0x3FFF, h & 0x3FFF, False
    if kind == b"VP8L":
        if body[0] != 0x2F:
            raise ValueError("bad VP8L signature")
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError(f"unexpected WebP chunk {kind!r}")


def _embed_webp(data: bytes, meta: dict[str, Any]) -> bytes:
    chunks = _webp_chunks(data)
    if chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        body = chunks[1:]
    else:
        w, h, alpha = _webp_canvas(*chunks[0])
        header = bytearray(10)
        if alpha:
            header[0] |= 0x10  # alpha
        header[4:7] = (w - 1).to_bytes(3, "little")
        header[7:10] = (h - 1).to_bytes(3, "little")
        body = chunks
    old_xmp = next((b for k, b in body if k == b"XMP "), None)
    body = [(k, b) for k, b in body if k != b"XMP " and not (k == b"EXIF" and _is_our_exif(b))]
    has_exif = any(k == b"EXIF" for k, _ in body)
    if not has_exif:
        body.append((b"EXIF", _exif_user_comment(parameters_text(meta))))
        header[0] |= 0x08
    body.append((b"XMP ", _xmp_packet(meta, old_xmp)))
    header[0] |= 0x04
    payload = b"WEBP" + _webp_chunk(b"VP8X", bytes(header)) + b"".join(_webp_chunk(k, b) for k, b in body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _read_webp(data: bytes) -> dict[str, Any] | None:
    for kind, body in _webp_chunks(data):
        if kind == b"XMP ":
            return _read_xmp(body)
    return None


# ---- public ---------------------------------------------------------------------------


_EMBED = {"png": _embed_png, "jpeg": _embed_jpeg, "webp": _embed_webp}
_READ = {"png": _read_png, "jpeg": _read_jpeg, "webp": _read_webp}


def embed_bytes(data: bytes, meta: dict[str, Any]) -> bytes:
    """``data`` with ``meta`` embedded; raises ValueError for a format it cannot carry."""
    kind = image_kind(data)
    if kind is None:
        raise ValueError("not a PNG, JPEG or WebP image")
    return _EMBED[kind](data, meta)


def embed_metadata(path: Path, meta: dict[str, Any]) -> bool:
    """Write ``meta`` (JSON-able; ``model`` and ``params`` at least) into the image at ``path``.

    In place, meant for the downloaded temporary file before it is fsynced and renamed, so
    a crash cannot leave a half-written output. Returns False, leaving the file untouched,
    when it is not an image this module can carry metadata in (the output is still good;
    only its provenance is missing). Hash the file AFTER this call.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        new = embed_bytes(data, meta)
    except (ValueError, IndexError, struct.error):
        return False
    with open(path, "r+b") as fh:
        fh.write(new)
        fh.truncate()
    return True


def read_metadata_bytes(data: bytes) -> dict[str, Any] | None:
    kind = image_kind(data)
    if kind is None:
        return None
    try:
        found = _READ[kind](data)
    except (ValueError, IndexError, struct.error, json.JSONDecodeError, zlib.error):
        return None
    return found if isinstance(found, dict) else None


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The metadata ``embed_metadata`` wrote into ``path``, or None if it holds none."""
    return read_metadata_bytes(Path(path).read_bytes())


def _git(cwd: Path, *args: str) -> str | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")  # never take the index lock
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_info(manifest_path: str | Path) -> dict[str, Any]:
    """``{"manifest": path}``, plus, inside a git work tree, ``git_commit`` (HEAD),
    ``git_dirty`` (tracked changes, or the manifest itself untracked or modified) and
    ``git_path`` (the manifest's path inside the repository: ``git show COMMIT:PATH``)."""
    path = Path(manifest_path)
    info: dict[str, Any] = {"manifest": str(manifest_path)}
    folder = path.resolve().parent
    if not folder.is_dir():
        return info
    commit = _git(folder, "rev-parse", "--verify", "HEAD")
    top = _git(folder, "rev-parse", "--show-toplevel")
    if not commit or not top:
        return info
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    mine = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", path.name)
    info["git_commit"] = commit.strip()
    info["git_dirty"] = bool((status or "").strip() or (mine or "").strip())
    try:
        info["git_path"] = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    except ValueError:
        pass
    return info
