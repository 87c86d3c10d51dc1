"""Group commit, once for every store that writes (the JSONL ledger, the SQL stores).

Concurrent ``await append(...)`` calls queue into one group; whichever appender finds no
write under way takes the group, writes it in a worker thread (one fsync or one transaction
for all of them) and wakes the others; an appender whose group is being written waits for the
next. ``append`` cannot be cancelled: a caller told "cancelled" could not know whether its
intent reached the disk.
"""

from __future__ import annotations

from typing import Any, ClassVar

import trio

from lumozbatch.errors import LumozbatchError

__all__ = ["Group", "GroupCommit"]


class Group:
    """What a store commits at once (a store's subclass adds the rows or bytes); ``done``
    once written (``error`` set if that failed)."""

    __slots__ = ("done", "error", "waiters")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None
        self.waiters: list[trio.lowlevel.Task] = []  # appenders asleep until it is written


class GroupCommit:
    """Mix-in: :meth:`flush`, :meth:`run_writer` and :meth:`_wait_durable`, the waiting of
    ``append`` (which need not be shielded: the wait cannot be cancelled).

    The store keeps its queued group in ``_group`` (None: nothing queued) and gives
    :meth:`_take_group` (detach it), :meth:`_write_taken` (write it; any thread),
    :meth:`_after_write` (bookkeeping once written, in trio) and :meth:`_write_error`.

    Writes are pipelined: when one ends and a group queued meanwhile, one of its appenders
    takes it at once, so the appenders just woken fold their next steps (trio's thread) while
    it is written (the writer's thread, which SQLite's work and fsync leave without the GIL).
    """

    #: what a failed write raises; the group records it, its appenders get ``_write_error``
    _errors: ClassVar[tuple[type[BaseException], ...]] = ()
    _group: Any
    _broken: BaseException | None  # a write failed: the store refuses every later append

    def _init_group_commit(self) -> None:
        self._group = None
        self._writing: Group | None = None  # the group a worker thread is writing
        self._backlog = False  # a group was queued while the last write was under way

    @property
    def _flushing(self) -> bool:
        return self._writing is not None

    def _take_group(self) -> Group:
        raise NotImplementedError

    def _write_taken(self, group: Any) -> None:
        raise NotImplementedError

    def _after_write(self, group: Any) -> None:
        """Once ``group`` is durable (in trio's thread): nothing, unless the store keeps more."""

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
        if group.error is not None:
            raise self._write_error(group.error) from group.error

    async def _wait_written(self, group: Group) -> None:
        while not group.done:
            if self._writing is not None or group is not self._group:
                await self._park(group)
            else:
                # one cancel scope per group, not per append (entering and leaving one was
                # ~10% of a step's CPU with 64 appenders)
                with trio.CancelScope(shield=True):
                    await self._flush_once()

    async def _park(self, group: Group) -> None:
        """Sleep until ``group`` is written or must be taken, deaf to cancellation: an abort
        refused (``Abort.FAILED``) leaves the task asleep until a write wakes it."""
        group.waiters.append(trio.lowlevel.current_task())
        await trio.lowlevel.wait_task_rescheduled(_refuse_abort)

    async def _flush_once(self) -> None:
        self._writing = self._group  # from now on the others wait (and may still join it)
        if not self._backlog:
            # nothing was waiting: let the appenders of this same tick join the group
            await trio.lowlevel.checkpoint()
        group = self._take_group()
        assert group is self._writing
        try:
            await trio.to_thread.run_sync(self._write_taken, group)
        except self._errors as exc:
            group.error = exc
        else:
            self._after_write(group)
        finally:
            self._writing = None
            self._backlog = self._group is not None
            self._written(group)

    def _write_queued(self) -> None:
        """Closing: write the group still queued, in the calling thread, unless a write is
        under way (its task writes what follows) or one failed (nothing more is written)."""
        if self._group is not None and not self._flushing and self._broken is None:
            self._write_now(self._take_group())

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
        """``group`` is written (or failed): wake its appenders, and one of the next group's
        (queued meanwhile: it takes that group at once)."""
        group.done = True
        for task in group.waiters:
            trio.lowlevel.reschedule(task)
        group.waiters.clear()
        queued = self._group
        if queued is not None and queued.waiters and self._writing is None:
            trio.lowlevel.reschedule(queued.waiters.pop())


def _refuse_abort(raise_cancel: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
