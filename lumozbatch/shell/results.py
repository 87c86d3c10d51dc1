"""``<out>/results.jsonl``: one line per downloaded output, for people and other tools.

Keys per SPEC section 4: ``job``, ``identity``, ``variables``, ``model``, ``params``,
``request_id``, ``file`` (relative to the output folder), ``sha256``, ``bytes`` (more allowed).
The ledger stays the source of truth; this file is its readable digest.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from lumozbatch.core.ledger_codec import decode_lines
from lumozbatch.errors import UsageError

__all__ = [
    "REQUIRED_KEYS", "RESULTS_FILE", "append_result", "encode_row", "identity_key", "latest_rows",
    "read_identity_keys", "read_results", "results_path",
]

RESULTS_FILE = "results.jsonl"
#: Rows may come from several worker threads: the torn-tail check and the write must not
#: interleave (one run per batch is guaranteed by the ledger's lock, so in-process is enough).
_WRITE_LOCK = threading.Lock()

REQUIRED_KEYS = ("job", "identity", "variables", "model", "params", "request_id", "file", "sha256", "bytes")


#: The row's own identity where the rows we write keep it: the key after ``job`` (a string, in
#: which every quote is escaped); spaces allowed, as Python's ``json.dumps`` writes them by
#: default. Any other row is parsed (the key may be elsewhere, or nested in a value).
_IDENTITY = re.compile(rb'\{"job": ?"(?:[^"\\]|\\.)*", ?"identity": ?"([0-9a-f]{16,64})"')


def identity_key(identity: str | bytes) -> int:
    """A compact stand-in for an identity (its first 60 bits) for sets of a million; the hex
    as text, or as the bytes of a results line."""
    return int(identity[:15], 16)


def read_identity_keys(path: Path) -> set[int]:
    """The ``identity_key`` of every whole row of the results file at ``path``, read a line at
    a time (a million rows are a set of small ints, not a list of dicts). A torn last line
    is not a row. A missing file has none."""
    keys: set[int] = set()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return keys
    except OSError as exc:
        raise _unreadable(path, exc) from None
    with fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # torn by a crash: not a row
            found = _IDENTITY.match(line)
            if found is not None:
                keys.add(identity_key(found.group(1)))
                continue
            try:  # a row written by another tool, keys in another order
                identity = json.loads(line).get("identity")
            except (ValueError, AttributeError):
                continue
            if isinstance(identity, str) and re.fullmatch(r"[0-9a-f]{16,}", identity):
                keys.add(identity_key(identity))
    return keys


def results_path(out_dir: Path) -> Path:
    return Path(out_dir) / RESULTS_FILE


def append_result(out_dir: Path, row: dict[str, Any]) -> None:
    """Append one row and fsync. A torn last line left by a crash is cut off first, so the
    new row never glues onto it. Blocking: call it from a worker thread in async code."""
    line = encode_row(row)
    path = results_path(out_dir)
    with _WRITE_LOCK:
        created = not path.exists()
        _append_line(path, line)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def encode_row(row: dict[str, Any]) -> bytes:
    """One row as its line (with the newline); refuses a row without the required keys."""
    missing = [key for key in REQUIRED_KEYS if key not in row]
    if missing:
        raise ValueError(f"a results row without {', '.join(missing)}")
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _append_line(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.ftruncate(fd, _last_newline_end(fd, size))
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just past the last ``\\n`` in the file (0 if none), reading backwards."""
    end = size
    block = 64 * 1024
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def read_results(out_dir: Path) -> list[dict[str, Any]]:
    """Every row, in file order; a torn last line is ignored. An output downloaded twice
    (a crash between the download and its ledger record) appears once: its latest row,
    at its first position."""
    path = results_path(out_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return latest_rows(data, file=str(path))


def _unreadable(path: Path, exc: OSError) -> UsageError:
    """A folder in its place, no permission: said before anything is sent."""
    return UsageError(
        f"cannot read {path}: {exc.strerror or exc}",
        details=[f"{RESULTS_FILE} is lumozbatch's list of downloaded outputs; move whatever is there aside"],
    )


def latest_rows(data: bytes, *, file: str) -> list[dict[str, Any]]:
    """The rows of a results.jsonl's bytes as :func:`read_results` gives them."""
    rows, _ = decode_lines(data, file=file, require_type=False)
    latest: dict[str, dict[str, Any]] = {}
    anonymous: list[tuple[int, dict[str, Any]]] = []
    order: dict[str, int] = {}
    for position, row in enumerate(rows):
        identity = row.get("identity")
        if isinstance(identity, str):
            order.setdefault(identity, position)
            latest[identity] = row
        else:
            anonymous.append((position, row))
    ordered = [(order[i], row) for i, row in latest.items()] + anonymous
    return [row for _, row in sorted(ordered, key=lambda pair: pair[0])]
