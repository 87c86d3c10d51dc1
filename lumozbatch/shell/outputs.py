"""Paid outputs are never destroyed: a store of immutable objects, and names linked to them.

Every downloaded output is kept once, by identity, in ``.lumozbatch/objects/<id[:2]>/<id><ext>``
(read-only). The files a person sees, ``<out>/<name><ext>``, are hard links to those objects
(a copy where the filesystem has no hard links), materialized from the current manifest, as
DVC's cache and ``checkout`` do. So:

* an edit that gives a name to another generation re-points the name; the older output stays
  in the store (and a reverted edit points the name back, with no request);
* a file at a name that is not provably one of this batch's objects (the user's own, or the
  only copy made by an older lumozbatch) is moved into ``.lumozbatch/displaced/``, never
  overwritten or deleted;
* a name deleted by hand is put back from the store; only when the object is gone too must
  the output be fetched again.

Everything that writes outputs goes through :class:`Outputs`: this local ``OutputTree``, or
``shell.s3_outputs.S3Outputs`` (the same layout as keys under an ``s3://`` prefix);
:func:`open_outputs` picks one from ``--out``.

Blocking calls (filesystem, network): call them from a worker thread in async code.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.shell import results
from lumozbatch.shell.durable import fsync_dir
from lumozbatch.shell.location import is_bucket_url
from lumozbatch.shell.paths import safe_join, safe_target

if TYPE_CHECKING:  # httpx comes with download: status, which only reads, never loads it
    from lumozbatch.shell.download import Downloaded

__all__ = [
    "DISPLACED_DIR",
    "OBJECTS_DIR",
    "Health",
    "KnownOutput",
    "OutputTree",
    "Outputs",
    "as_outputs",
    "checked_in_threads",
    "object_stem",
    "open_outputs",
]

OBJECTS_DIR = f"{STATE_DIR}/objects"
DISPLACED_DIR = f"{STATE_DIR}/displaced"
GALLERY_FILE = "index.html"
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
# link() errors that mean "this filesystem has no hard links here": copy instead
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def object_stem(identity: str) -> str:
    """The object's path without extension, relative to the output folder."""
    return f"{OBJECTS_DIR}/{identity[:2]}/{identity}"


@dataclass(frozen=True, slots=True)
class KnownOutput:
    """An output the batch holds: its object (relative path) and what was recorded of it."""

    object: str
    sha256: str | None
    bytes: int | None


class Health(enum.Enum):
    """What a done job's files look like on disk (a cheap check: stats, no hashing)."""

    OK = "ok"  # the name is a link to the object (or a copy of its size)
    NAME_MISSING = "name_missing"  # the object is kept; the name can be put back for free
    NAME_TAKEN = "name_taken"  # something else is at the name
    OBJECT_MISSING = "object_missing"  # the named file is there, the kept copy is not
    LOST = "lost"  # neither: only the provider can give it back


class Outputs(Protocol):
    """Where a batch's outputs, ``results.jsonl`` and ``index.html`` go. Paths are relative
    to the output root (``.lumozbatch/objects/...`` for kept objects, names for the rest).
    Every method blocks: call it from a worker thread in async code. A store that refuses
    a write raises ``OSError`` (so a run stops rather than pay for what it cannot keep)."""

    #: the folder, or the ``s3://`` URL, for messages
    shown: str

    @property
    def staging(self) -> Path:
        """The folder downloads are written into (``download(..., staging, object_stem(id))``)."""
        ...

    def keep(self, got: Downloaded) -> None:
        """Make a verified download in ``staging`` a kept object at ``got.rel``; returns once
        the store holds it whole (then the ``Downloaded`` record may be written)."""
        ...

    def seal(self, object_rel: str) -> None: ...
    def place(self, object_rel: str, name_rel: str, others: Iterable[KnownOutput] = ()) -> str | None: ...
    def health(self, object_rel: str, name_rel: str, recorded_bytes: int | None) -> Health: ...
    def health_many(self, checks: Sequence[tuple[str, str, int | None]]) -> list[Health]:
        """:meth:`health` of each ``(object_rel, name_rel, recorded_bytes)``, in order, several
        at once (a run checks every done job's outputs before it starts)."""
        ...
    def adopt(self, name_rel: str, identity: str, known: KnownOutput | None = None) -> str | None: ...
    def sweep_partial_downloads(self) -> int: ...
    def append_result(self, row: dict[str, Any]) -> None: ...
    def read_results(self) -> list[dict[str, Any]]: ...
    def result_identities(self) -> set[int]:
        """``results.identity_key`` of every row results.jsonl holds, streamed."""
        ...

    def flush_results(self) -> None:
        """Make every appended row durable in the store (a no-op where appends are)."""
        ...

    def write_index(self, html: str) -> str:
        """Write ``index.html``; returns where it went (a path or a URL)."""
        ...

    def close(self) -> None: ...


def open_outputs(out: str | Path, *, state_home: Path, writable: bool = True) -> Outputs:
    """``s3://BUCKET/PREFIX`` gives ``S3Outputs`` (with ``writable``, checked reachable and
    writable now, before anything is sent to the API; ``status`` passes False and writes
    nothing), whose local files live in ``state_home``. Anything else is the local folder
    (its own home)."""
    if is_bucket_url(out):
        from lumozbatch.shell.s3_outputs import S3Outputs

        return S3Outputs.open(str(out), state_home=state_home, check=writable)
    return OutputTree(Path(out))


def as_outputs(where: Outputs | Path | str) -> Outputs:
    """An ``Outputs`` as given, or the local folder at a path (callers that hold a folder)."""
    if isinstance(where, (str, os.PathLike)):
        if is_bucket_url(where):
            raise ValueError(f"{where}: open object storage with open_outputs")
        return OutputTree(Path(where))
    return where


class OutputTree:
    """The output folder of one batch: its object store and its named files."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.shown = str(self.out_dir)

    def path(self, rel: str) -> Path:
        return safe_target(self.out_dir, rel)

    # -- keeping ------------------------------------------------------------------------

    @property
    def staging(self) -> Path:
        return self.out_dir  # a download is renamed into the store once verified

    def keep(self, got: Downloaded) -> None:
        """The download is already in the store (renamed there once whole and fsynced)."""
        self.seal(got.rel)

    def seal(self, object_rel: str) -> None:
        """Make a downloaded object read-only (so no tool edits the paid output in place
        through one of its names)."""
        path = self.path(object_rel)
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & _READ_ONLY or _READ_ONLY)

    def adopt(self, name_rel: str, identity: str, known: KnownOutput | None = None) -> str | None:
        """Keep the file at ``name_rel`` as ``identity``'s object (an output downloaded before
        the store existed, or whose object was deleted). Returns the object's relative path,
        or None when the file is missing or is not the recorded output (size/sha256)."""
        named = self.path(name_rel)
        try:
            info = os.stat(named)
        except FileNotFoundError:
            return None
        if known is not None and not _matches(named, info, known):
            return None
        object_rel = object_stem(identity) + "".join(Path(name_rel).suffixes[-1:])
        target = self.path(object_rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _same_file(target, info):
            _link_into(named, target)
        self.seal(object_rel)
        return object_rel

    def sweep_partial_downloads(self) -> int:
        """Delete the temporary files of downloads a killed run left in the store (only ours:
        ``.<object>.<hex>.part``); returns how many. Call it holding the batch's lock."""
        swept = 0
        try:
            shards = [e for e in os.scandir(self.out_dir / OBJECTS_DIR) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return 0
        for shard in shards:
            with os.scandir(shard.path) as entries:
                parts = [e.path for e in entries if e.name.startswith(".") and e.name.endswith(".part")]
            for path in parts:
                try:
                    os.unlink(path)
                    swept += 1
                except FileNotFoundError:
                    pass
        return swept

    # -- results.jsonl and index.html ---------------------------------------------------

    def append_result(self, row: dict[str, Any]) -> None:
        results.append_result(self.out_dir, row)

    def read_results(self) -> list[dict[str, Any]]:
        return results.read_results(self.out_dir)

    def result_identities(self) -> set[int]:
        return results.read_identity_keys(results.results_path(self.out_dir))

    def flush_results(self) -> None:
        """Each row is fsynced as it is appended: nothing waits here."""

    def write_index(self, html: str) -> str:
        path = self.out_dir / GALLERY_FILE
        _atomic_write(path, html)
        return str(path)

    def close(self) -> None:
        """Nothing is held open between calls."""

    # -- the named tree -----------------------------------------------------------------

    def health(self, object_rel: str, name_rel: str, recorded_bytes: int | None) -> Health:
        # strings, not Paths: a run checks every done job's two files before it starts
        named, obj = _stat(safe_join(self.shown, name_rel)), _stat(safe_join(self.shown, object_rel))
        if obj is None:
            return Health.LOST if named is None else Health.OBJECT_MISSING
        if named is None:
            return Health.NAME_MISSING
        if (named.st_ino, named.st_dev) == (obj.st_ino, obj.st_dev):
            return Health.OK
        if named.st_nlink == 1 and named.st_size == obj.st_size == (recorded_bytes or obj.st_size):
            return Health.OK  # a copy (no hard links here); the size says it is ours
        return Health.NAME_TAKEN

    def health_many(self, checks: Sequence[tuple[str, str, int | None]]) -> list[Health]:
        # one thread: stat calls are quick enough that threads lost more to the GIL than
        # they overlapped (measured at 100,000 outputs on two cores)
        return [self.health(*check) for check in checks]

    def place(self, object_rel: str, name_rel: str, others: Iterable[KnownOutput] = ()) -> str | None:
        """Make ``name_rel`` show ``object_rel``. ``others``: the batch's other outputs that
        have held this name (they stay in the store, so their links may be replaced).
        Anything else at the name is moved aside first; returns where it went, or None."""
        named = self.path(name_rel)
        obj = self.path(object_rel)
        current = _stat(named)
        obj_info = os.stat(obj)
        if current is not None and (current.st_ino, current.st_dev) == (obj_info.st_ino, obj_info.st_dev):
            return None
        displaced = None
        if current is not None and not stat.S_ISDIR(current.st_mode) and not self._is_known(named, current, others):
            displaced = self._move_aside(name_rel)
        elif current is not None and stat.S_ISDIR(current.st_mode):
            displaced = self._move_aside(name_rel)
        named.parent.mkdir(parents=True, exist_ok=True)
        _link_into(obj, named)
        return displaced

    def _is_known(self, named: Path, info: os.stat_result, others: Iterable[KnownOutput]) -> bool:
        for other in others:
            other_info = _stat(self.path(other.object))
            if other_info is None:
                continue  # its kept copy is gone: this file may be the only one left
            if (other_info.st_ino, other_info.st_dev) == (info.st_ino, info.st_dev):
                return True
            if info.st_size == other_info.st_size and _matches(named, info, other):
                return True  # a copy of a kept object (filesystems without hard links)
        return False

    def _move_aside(self, name_rel: str) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        rel = f"{DISPLACED_DIR}/{stamp}-{secrets.token_hex(3)}/{name_rel}"
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path(name_rel), target)
        fsync_dir(target.parent)
        return rel


def checked_in_threads(
    health: Callable[[str, str, int | None], Health], checks: Sequence[tuple[str, str, int | None]], threads: int
) -> list[Health]:
    """``health(*check)`` of each of ``checks``, in order, split between ``threads`` workers."""
    if len(checks) < 2 * threads:
        return [health(*check) for check in checks]
    size = -(-len(checks) // threads)
    parts = [checks[start:start + size] for start in range(0, len(checks), size)]
    with ThreadPoolExecutor(len(parts)) as pool:
        return [h for part in pool.map(lambda part: [health(*check) for check in part], parts) for h in part]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".html.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stat(path: Path | str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _same_file(path: Path, info: os.stat_result) -> bool:
    other = _stat(path)
    return other is not None and (other.st_ino, other.st_dev) == (info.st_ino, info.st_dev)


def _matches(path: Path, info: os.stat_result, known: KnownOutput) -> bool:
    if known.bytes is not None and info.st_size != known.bytes:
        return False
    if known.sha256 is None:
        return True
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == known.sha256


def _link_into(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, else a copy), atomically:
    the name never shows nothing or half a file, and an existing ``target`` is replaced
    only once the new one is whole and durable."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.link(source, tmp)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
