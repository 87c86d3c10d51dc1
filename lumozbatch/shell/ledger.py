"""The durable ledger of one batch: ``<out>/.lumozbatch/ledger.jsonl`` and its lock.

* One run per batch: ``.lumozbatch/lock`` is held with ``fcntl.flock`` for the life of a
  :class:`Ledger`; the kernel releases it when the process dies, even on ``kill -9``.
* Durable and in order: every append is written and fsynced before it returns; the folder is
  fsynced when the ledger file (or its folder) is first created.
* Group commit: concurrent ``await append(...)`` calls share one write + fsync (run in a worker
  thread). The first appender that finds no flush under way leads one: it takes every record
  queued so far, writes them, and wakes the others; an appender whose records missed that
  group leads the next one. No extra task is required (see :meth:`Ledger.run_writer`).
* Crash safety: a torn last line (the write in progress when the power went) is cut off at
  open; anything damaged before it is refused (``LedgerCorrupt``), never silently dropped.
* What it takes: the typed records of :mod:`lumozbatch.core.records`; the runner reaches it
  through :class:`lumozbatch.shell.store.BatchStore` only.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.ledger_codec import LedgerState, RecordReader, encode, replay
from lumozbatch.core.records import Record, to_wire
from lumozbatch.errors import LedgerNotFound, LumozbatchError, UsageError
from lumozbatch.shell.durable import fsync_dir
from lumozbatch.shell.group_commit import Group, GroupCommit
from lumozbatch.shell.lockfile import LOCK_FILE, run_in_progress, take_lock
from lumozbatch.shell.state_reads import StateReads

__all__ = [
    "LEDGER_DIR",
    "LEDGER_FILE",
    "Ledger",
    "LedgerWriteError",
    "ledger_path",
    "read_state",
]

LEDGER_DIR = STATE_DIR
LEDGER_FILE = "ledger.jsonl"

#: What ``append`` takes: a typed record, or (for callers not yet moved to
#: :mod:`lumozbatch.core.records`) the same record already in wire form.
Appendable = Record | Mapping[str, Any]


class LedgerWriteError(LumozbatchError):
    """The disk refused a ledger write; the run must stop (nothing unrecorded may be sent)."""


def ledger_path(out_dir: Path) -> Path:
    return Path(out_dir) / LEDGER_DIR / LEDGER_FILE


@contextlib.contextmanager
def gc_paused() -> Any:
    """Replay builds ~half a million small dicts that all survive: the cyclic collector
    would rescan them over and over (about half the replay time) and can free none."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class _Group(Group):
    """Records queued together; ``done`` once written and fsynced (or failed)."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        super().__init__()
        self.data = b""  # the lines, joined when the group is taken


class Ledger(GroupCommit, StateReads):
    """An open, locked ledger. Use :meth:`open`; :meth:`close` (or ``with``) releases it.

    Implements :class:`lumozbatch.shell.store.BatchStore` (what the runner relies on).
    """

    def __init__(self, out_dir: Path, fd: int, lock_fd: int, state: LedgerState, size: int) -> None:
        self.out_dir = out_dir
        self.path = ledger_path(out_dir)
        self.state = state  # replayed at open, kept current by every append
        self.fsync_count = 0  # writes+fsyncs done (group commit makes it < appends)
        self.repaired_bytes = 0  # torn tail cut off at open
        self._fd: int | None = fd
        self._lock_fd: int | None = lock_fd
        self._size = size
        self._queue: list[bytes] = []
        self._init_group_commit()
        self._broken: BaseException | None = None

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, out_dir: Path, *, create: bool) -> Ledger:
        """Lock the batch in ``out_dir`` and replay its ledger.

        ``create=False`` and no ledger: :class:`LedgerNotFound`. Another live run holds the
        lock: :class:`LockHeld`. A torn last record is cut off (and fsynced).
        """
        out_dir = Path(out_dir)
        meta = out_dir / LEDGER_DIR
        path = meta / LEDGER_FILE
        if not create and not path.is_file():
            raise LedgerNotFound(
                f"no ledger in {out_dir}: nothing has been run there yet",
                details=["run `lumozbatch apply MANIFEST` first (or point at the right folder)"],
            )
        try:
            missing = [f for f in (meta, *meta.parents) if not f.is_dir()]
            meta.mkdir(parents=True, exist_ok=True)
            for folder in reversed(missing):  # each new folder's entry must survive power loss
                fsync_dir(folder.parent)
            lock_fd = take_lock(meta / LOCK_FILE, out_dir)
        except OSError as exc:
            raise UsageError(f"cannot use {out_dir} as the output folder: {exc.strerror or exc}") from None
        fd = -1
        try:
            existed = path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            if not existed:
                os.fsync(fd)
                fsync_dir(meta)
            data = _read_all(fd)
            reader = RecordReader(data, file=str(path))
            with gc_paused():
                state = replay(reader, file=str(path))
            end = reader.end
            if end < len(data):
                os.ftruncate(fd, end)
                os.fsync(fd)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            os.close(lock_fd)  # releases the lock
            if isinstance(exc, OSError):
                raise UsageError(f"cannot read the ledger {path}: {exc.strerror or exc}") from None
            raise
        ledger = cls(out_dir, fd, lock_fd, state, end)
        ledger.repaired_bytes = len(data) - end
        return ledger

    # -- appending -----------------------------------------------------------------------

    def append_sync(self, *records: Appendable) -> None:
        """Write ``records`` and fsync now, in the calling thread (setup, tests).

        Not while async appends are under way (their order would be lost).
        """
        if self._flushing or self._queue:
            raise RuntimeError("append_sync() while async appends are pending")
        stamped = self._prepare(records)
        data = b"".join(encode(r) for r in stamped)
        try:
            self._write(data)
        except OSError as exc:
            raise LedgerWriteError(
                f"could not write the ledger {self.path}: {exc}",
                details=["nothing was sent without a record; free the disk, then `lumozbatch resume`"],
            ) from exc
        for record in stamped:
            self.state.apply(record)

    async def append(self, *records: Appendable) -> None:
        """Append ``records`` (in order, after every earlier append); returns once durable.

        The records are checked against the job lifecycle first (an illegal one raises and
        nothing is written) and applied to :attr:`state` at once, in call order. Not
        cancellable: it costs one shared fsync, and a caller that was told "cancelled" could
        not know whether its intent reached the disk.
        """
        stamped = self._prepare(records)
        data = b"".join(encode(r) for r in stamped)
        for record in stamped:
            self.state.apply(record)
        if self._group is None:
            self._group = _Group()
        group = self._group
        self._queue.append(data)
        await self._wait_durable(group)

    def close(self) -> None:
        """Write anything still queued, then release the file and the lock. Idempotent."""
        if self._fd is None:
            return
        try:
            self._close_group_commit()
        finally:
            os.close(self._fd)
            self._fd = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._lock_fd, 0)  # no pid left behind: nobody is running
                os.close(self._lock_fd)  # the kernel drops the flock with the last fd
                self._lock_fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._fd is None

    # -- internals -----------------------------------------------------------------------

    def _prepare(self, records: tuple[Appendable, ...]) -> list[dict[str, Any]]:
        if self._fd is None:
            raise RuntimeError("the ledger is closed")
        if self._broken is not None:
            raise LedgerWriteError(
                f"the ledger {self.path} could not be written earlier; stopping",
                details=[str(self._broken)],
            )
        stamped = stamp(records, time.time())
        self.state.check(stamped)  # raises before anything is queued or written
        return stamped

    # -- group commit (GroupCommit's hooks) ------------------------------------------------

    _errors = (OSError,)

    def _take_group(self) -> _Group:
        group = self._group
        assert group is not None
        group.data = b"".join(self._queue)
        self._queue, self._group = [], None
        return group

    def _write_taken(self, group: _Group) -> None:
        self._write(group.data)

    def _write_error(self, exc: BaseException) -> LedgerWriteError:
        return LedgerWriteError(
            f"could not write the ledger {self.path}: {exc}",
            details=["the run stops so that nothing is sent without a record; "
                     "free the disk, then `lumozbatch resume`"],
        )

    def _write(self, data: bytes) -> None:
        """write + fsync (any thread); on failure cut the partial write off and refuse more."""
        fd = self._fd
        if fd is None:
            raise RuntimeError("the ledger is closed")
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            self._broken = exc
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise
        self._size += len(data)
        self.fsync_count += 1


def stamp(records: tuple[Appendable, ...], now: float) -> list[dict[str, Any]]:
    """``records`` in wire form, each stamped ``at`` ``now`` unless it has a time already."""
    at = round(now, 3)
    wire = [to_wire(r) for r in records]
    for record in wire:
        record.setdefault("at", at)
    return wire


def read_state(out_dir: Path, *, live: bool | None = None) -> LedgerState:
    """The ledger's state without taking the lock (status, plan, gallery); a torn last line
    (a run writing right now) is ignored, not repaired.

    While a run is live (``live=None``: detected with :func:`run_in_progress`), a job whose
    ``run`` is on the wire stays SUBMITTING; otherwise such a job is AMBIGUOUS (the run that
    sent it died before recording the answer).
    """
    if live is None:
        live = run_in_progress(out_dir) is not None
    path = ledger_path(Path(out_dir))
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise LedgerNotFound(
            f"no ledger in {out_dir}: nothing has been run there yet",
            details=["run `lumozbatch apply MANIFEST` first (or point at the right folder)"],
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read the ledger {path}: {exc.strerror or exc}") from None
    with gc_paused():
        return replay(RecordReader(data, file=str(path)), file=str(path), settle=not live)

