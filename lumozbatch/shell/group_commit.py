"""Group commit, once for every store that writes (the JSONL ledger, the SQL stores).

Concurrent ``await append(...)`` calls queue into one group, written in a worker thread (one
fsync or one transaction for all of them); an appender that finds no write under way starts
it, and when a write ends the group queued meanwhile is started at once. Appenders sleep
until their group is written. ``append`` cannot be cancelled: a caller told "cancelled"
could not know whether its intent reached the disk.
"""

from __future__ import annotations

from typing import Any, ClassVar

import outcome
import trio

from lumozbatch.errors import LumozbatchError
from lumozbatch.shell import switch_interval


__all__ = ["Group", "GroupCommit"]


class Group:
    """What a store commits at once (a store's subclass adds the rows or bytes); ``done``
    once written (``error`` set if that failed)."""

    __slots__ = ("done", "error", "starting", "waiters")

    def __init__(self) -> None:
        self.done = False
        self.starting = False  # an appender will start its write once this tick's have joined
        self.error: BaseException | None = None
        self.waiters: list[trio.lowlevel.Task] = []  # appenders asleep until it is written


class GroupCommit:
    """Mix-in: :meth:`flush`, :meth:`run_writer` and :meth:`_wait_durable`, the waiting of
    ``append`` (which need not be shielded: the wait cannot be cancelled).

    The store keeps its queued group in ``_group`` (None: nothing queued) and gives
    :meth:`_take_group` (detach it), :meth:`_write_taken` (write it; any thread),
    :meth:`_after_write` (bookkeeping once written, in trio) and :meth:`_write_error`.

    Writes are pipelined: when one ends, the group queued meanwhile is taken and its write
    started there and then, in trio's thread, before the appenders just woken run; so they
    fold their next steps (trio's thread) while it is written (a worker thread, which SQLite's
    work and fsync leave without the GIL). Waking one of the queued group's appenders to take
    it instead let trio run it after the others half of the time (it orders each batch of
    woken tasks either way round): they had folded into that group, and the two threads took
    turns.
    """

    #: what a failed write raises; the group records it, its appenders get ``_write_error``
    _errors: ClassVar[tuple[type[BaseException], ...]] = ()
    _group: Any
    _broken: BaseException | None  # a write failed: the store refuses every later append

    def _init_group_commit(self) -> None:
        self._group = None
        self._writing: Group | None = None  # the group a worker thread is writing
        self._woken = 0  # how many appenders the last write woke
        self._threaded = False  # a write ran in a worker thread: the switch interval is short

    @property
    def _flushing(self) -> bool:
        return self._writing is not None

    def _take_group(self) -> Group:
        raise NotImplementedError

    def _write_taken(self, group: Any) -> None:
        raise NotImplementedError

    def _after_write(self, group: Any) -> None:
        """Once ``group`` is durable (in trio's thread): nothing, unless the store keeps more."""

    def _begin_write(self, group: Any) -> None:
        """Before ``group`` is handed to the worker thread (in trio's): nothing, unless the
        store starts its transaction there (each GIL round trip the worker saves counts)."""

    def _write_error(self, exc: BaseException) -> LumozbatchError:
        raise NotImplementedError

    async def flush(self) -> None:
        """Return once everything appended so far is durable (not cancellable)."""
        if self._group is not None:
            await self._wait_durable(self._group)
        elif self._writing is not None:
            await self._wait_written(self._writing)

    async def run_writer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Companion task for the runner's nursery (``await nursery.start(store.run_writer)``).

        Appends commit themselves, so this task does no work while the run goes on; it makes
        the nursery's exit a durability point: when the nursery is cancelled (Ctrl-C, an
        error) it writes anything still queued, uncancellably, and returns.
        """
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            await self.flush()

    async def _wait_durable(self, group: Group) -> None:
        """Return once ``group`` is written, raising its write's error; not cancellable (a
        cancellation is delivered at the caller's next checkpoint)."""
        await self._wait_written(group)
        error = group.error
        if error is not None:
            if isinstance(error, self._errors):
                raise self._write_error(error) from error
            raise error  # not the disk's: a bug, shown as it is

    async def _wait_written(self, group: Group) -> None:
        if group is self._group and self._writing is None:
            if self._woken >= 4 and len(group.waiters) + 1 >= self._woken // 2:
                # half the appenders the last write woke are in: write them while the other
                # half fold (else all of them would fold, then all be written, in turn)
                self._start(self._take_group())
            elif not group.starting:
                # the first in: start it once the appenders of this tick have joined
                group.starting = True
                await trio.lowlevel.cancel_shielded_checkpoint()
                if group is self._group and self._writing is None:
                    self._start(self._take_group())
        if not group.done:
            group.waiters.append(trio.lowlevel.current_task())
            # deaf to cancellation: an abort refused (``Abort.FAILED``) leaves the task asleep
            # until its group's write wakes it
            await trio.lowlevel.wait_task_rescheduled(_refuse_abort)

    def _start(self, group: Group) -> None:
        """Write ``group``, taken, in a worker thread; :meth:`_wrote` runs in trio's once done."""
        self._writing = group
        if not self._threaded:
            self._threaded = True
            switch_interval.writer_opened()
        try:
            self._begin_write(group)
        except BaseException as exc:  # noqa: BLE001 - the group's write failed
            self._wrote(group, outcome.Error(exc))
            return
        token = trio.lowlevel.current_trio_token()

        def deliver(result: outcome.Outcome[None]) -> None:  # the worker thread's last act
            token.run_sync_soon(self._wrote, group, result)

        trio.lowlevel.start_thread_soon(lambda: self._write_taken(group), deliver)

    def _wrote(self, group: Group, result: outcome.Outcome[None]) -> None:
        """``group``'s write ended (trio's thread; raising here would crash trio itself):
        start the next queued group's, then wake this one's appenders."""
        try:
            result.unwrap()
            self._after_write(group)
        except BaseException as exc:  # noqa: BLE001 - handed to the group's appenders
            group.error = exc
            if self._broken is None:  # a bug may leave a transaction open: write no more
                self._broken = exc
        self._writing = None
        if self._group is not None:
            if self._broken is None:
                self._start(self._take_group())
            else:  # written after a lost group, its records would stand on steps never kept
                failed = self._take_group()
                failed.error = self._broken
                self._written(failed)
        self._written(group)

    def _close_group_commit(self) -> None:
        """Closing: write the group still queued, in the calling thread, unless a write is
        under way (it starts the queued one when it ends) or one failed (nothing more is
        written); the switch interval is given back."""
        try:
            if self._group is not None and not self._flushing and self._broken is None:
                self._write_now(self._take_group())
        finally:
            if self._threaded:
                self._threaded = False
                switch_interval.writer_closed()

    def _write_now(self, group: Group) -> None:
        """Write ``group``, taken, in the calling thread (closing): its appenders learn how
        that went; a failure raises here too."""
        try:
            self._write_taken(group)
        except self._errors as exc:
            group.error = exc
            raise
        finally:
            self._written(group)

    def _written(self, group: Group) -> None:
        """``group`` is written (or failed): wake its appenders."""
        group.done = True
        self._woken = len(group.waiters)
        for task in group.waiters:
            trio.lowlevel.reschedule(task)
        group.waiters.clear()


def _refuse_abort(raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
