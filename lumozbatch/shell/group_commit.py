"""Group commit, once for every store that writes (the JSONL ledger, the SQL stores).

Concurrent ``await append(...)`` calls queue into one group; whichever appender finds no
write under way takes the group, writes it in a worker thread (one fsync or one transaction
for all of them) and wakes the others; an appender whose group is being written waits for the
next. ``append`` is shielded: a caller told "cancelled" could not know whether its intent
reached the disk.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import trio

from lumozbatch.errors import LumozbatchError

__all__ = ["GroupCommit"]


class _Written(Protocol):
    done: bool
    error: BaseException | None


class GroupCommit:
    """Mix-in: :meth:`flush`, :meth:`run_writer` and the waiting of ``append``.

    The store keeps its queued group in ``_group`` (None: nothing queued) and gives
    :meth:`_take_group` (detach it), :meth:`_write_taken` (write it; any thread),
    :meth:`_after_write` (bookkeeping once written, in trio) and :meth:`_write_error`.
    """

    #: what a failed write raises; the group records it, its appenders get ``_write_error``
    _errors: ClassVar[tuple[type[BaseException], ...]] = ()
    _group: Any

    def _init_group_commit(self) -> None:
        self._group = None
        self._flushing = False
        self._flushed: trio.Event | None = None  # set after each write; made lazily in trio

    def _take_group(self) -> _Written:
        raise NotImplementedError

    def _write_taken(self, group: Any) -> None:
        raise NotImplementedError

    def _after_write(self, group: Any) -> None:
        """Once ``group`` is durable (in trio's thread): nothing, unless the store keeps more."""

    def _write_error(self, exc: BaseException) -> LumozbatchError:
        raise NotImplementedError

    async def flush(self) -> None:
        """Return once everything appended so far is durable."""
        with trio.CancelScope(shield=True):
            if self._group is not None:
                await self._wait_durable(self._group)
            while self._flushing:
                await self._flushed_event().wait()

    async def run_writer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Companion task for the runner's nursery (``await nursery.start(store.run_writer)``).

        Appends commit themselves, so this task does no work while the run goes on; it makes
        the nursery's exit a durability point: when the nursery is cancelled (Ctrl-C, an
        error) it writes anything still queued, shielded, and returns.
        """
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            await self.flush()

    def _flushed_event(self) -> trio.Event:
        if self._flushed is None:
            self._flushed = trio.Event()
        return self._flushed

    async def _wait_durable(self, group: _Written) -> None:
        while not group.done:
            if self._flushing:
                await self._flushed_event().wait()
            else:
                await self._flush_once()
        if group.error is not None:
            raise self._write_error(group.error) from group.error

    async def _flush_once(self) -> None:
        self._flushing = True
        try:
            await trio.lowlevel.checkpoint()  # appenders of this same tick join the group
            group = self._take_group()
            try:
                await trio.to_thread.run_sync(self._write_taken, group)
            except self._errors as exc:
                group.error = exc
            else:
                self._after_write(group)
            finally:
                group.done = True
        finally:
            self._flushing = False
            event = self._flushed_event()
            self._flushed = trio.Event()
            event.set()
