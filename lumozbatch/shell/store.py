"""The batch state behind one interface: what the runner reads and appends, whatever keeps it.

:class:`BatchStore` is the whole contract between the run loop and a batch's state. Three
implementations pass the same conformance suite (``tests/shell/test_store_conformance.py``):

* :class:`lumozbatch.shell.sqlite_store.SqliteStore`, ``state.db``: the store of every batch;
* :class:`lumozbatch.shell.ledger.Ledger`, the older JSONL ledger (locked, fsynced; imported);
* :class:`MemoryStore`, the same rules in memory (tests, library use with no disk).

Readers stream (``iter_jobs``, ``jobs_by_identity`` a chunk at a time) or ask aggregates
(``counts``, ``counts_by``, ``spend``, ``failures``), so that what a run or ``status`` holds
stays flat as a batch grows.

A store replays its records through :mod:`lumozbatch.core.ledger_codec`, so both agree on
every state: an append that the job lifecycle refuses raises and changes nothing. The job
records it hands out are its current view of each job; a caller that awaited an append reads
the job again (``job(identity)``) rather than trusting an older object.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import trio

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState, replay
from lumozbatch.core.records import Record, to_wire
from lumozbatch.core.spend import Spend
from lumozbatch.shell.ledger import Appendable, stamp
from lumozbatch.shell.state_reads import StateReads

__all__ = ["BatchStore", "MemoryStore"]


@runtime_checkable
class BatchStore(Protocol):
    """A batch's state, as the runner reads and extends it."""

    @property
    def batch(self) -> dict[str, Any] | None:
        """The ``batch`` record (wire form), or None before one is appended."""

    def job(self, identity: str) -> JobRecord:
        """The current state of one planned job; ``KeyError`` if never planned."""

    def all_jobs(self) -> Iterator[JobRecord]:
        """Every job ever planned, retired ones included, in planning order."""

    def jobs_in(self, *states: JobState) -> list[JobRecord]:
        """Active (not retired) jobs in any of ``states``, in planning order."""

    def holders(self, file: str) -> list[JobRecord]:
        """Jobs whose outputs have been shown under the name ``file``, oldest first (their
        outputs are kept: the name may be re-pointed from one to another)."""

    def counts(self) -> dict[str, int]:
        """Active jobs per state name, plus ``retired`` and ``total`` (active)."""

    def iter_jobs(
        self, states: Iterable[JobState] | None = None, *, retired: bool | None = None, chunk: int = 1000
    ) -> Iterator[JobRecord]:
        """Jobs in planning order, streamed: those in ``states`` (None: any), retired or not
        (None: both)."""

    def jobs_by_identity(self, identities: Iterable[str]) -> dict[str, JobRecord]:
        """The planned jobs among ``identities``."""

    def latest_holders(self, files: Iterable[str]) -> dict[str, str]:
        """For each of ``files`` some output was shown under, the identity shown last."""

    def counts_by(self, column: str) -> dict[str, dict[str, int]]:
        """Active jobs per ``job`` or ``model``, then per state name."""

    def counts_retired(self) -> dict[str, int]:
        """Retired jobs per state name."""

    def spend(self) -> Spend:
        """Generations that may have cost money, per model, retired jobs included."""

    def count_relinked(self, states: Iterable[JobState]) -> int:
        """Active jobs in ``states`` whose current request a webhook named."""

    def append_sync(self, *records: Record) -> None:
        """Record ``records`` durably, now, in order (setup; not while ``append``s are pending)."""

    async def append(self, *records: Record) -> None:
        """Record ``records`` after every earlier append; return once durable. The state
        reflects them at once; refused records raise before anything is recorded."""

    async def run_writer(self, *, task_status: Any = ...) -> None:
        """A task for the runner's nursery: when cancelled, makes what was appended durable."""

    def close(self) -> None:
        """Release the store (and its lock); idempotent."""


class MemoryStore(StateReads):
    """A :class:`BatchStore` in memory: the records it was given, and their replayed state."""

    def __init__(self, records: Iterable[Appendable] = ()) -> None:
        """``records``: what an earlier run left (wire form or typed), replayed as
        :meth:`Ledger.open` replays a file: a job left SUBMITTING comes out AMBIGUOUS."""
        self.records: list[dict[str, Any]] = [to_wire(r) for r in records]
        self.state: LedgerState = replay(self.records)
        self.closed = False

    def append_sync(self, *records: Appendable) -> None:
        if self.closed:
            raise RuntimeError("the store is closed")
        wire = stamp(records, time.time())
        self.state.check(wire)  # raises before anything is recorded, as the ledger does
        for record in wire:
            self.state.apply(record)
        self.records.extend(wire)

    async def append(self, *records: Appendable) -> None:
        await trio.lowlevel.checkpoint()  # a scheduling point, like the ledger's group commit
        self.append_sync(*records)

    async def run_writer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()  # every append is already "durable"

    def close(self) -> None:
        self.closed = True

    def replayed(self) -> LedgerState:
        """What a fresh process would read back (a job left SUBMITTING is AMBIGUOUS)."""
        return replay(self.records)

