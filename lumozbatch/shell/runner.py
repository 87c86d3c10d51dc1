"""The run loop: one trio nursery that submits, polls and downloads a batch's jobs.

``concurrency`` workers each carry one job at a time from ``pending`` to ``done`` (submit ->
poll -> download), so it bounds the jobs in flight; the HTTP calls themselves are bounded by
the one ``SharedLimiter`` that every API call passes through. Every step is appended to the
ledger before (intent) or right after (answer) it happens.

Money rules, in the order they matter:

- a ``run`` is sent only after its intent is durable, and inside a shielded scope (with a
  deadline) that also records its answer, so Ctrl-C never loses a paid request_id;
- a ``run`` is retried only when it certainly created nothing (``core.retry.decide_run``);
  an answer lost after sending makes the job ambiguous, never resubmitted silently;
- the first ``run`` of each model goes alone; the others wait for its acceptance, and a
  ``404 model_not_found`` fails the rest of that model without sending them;
- ``401`` stops everything (``AuthenticationError``).
"""

from __future__ import annotations

import random
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from lumozbatch.core.chunks import chunked
from lumozbatch.core.events import Event, EventSink, discard
from lumozbatch.core.ledger_codec import JobRecord, JobState
from lumozbatch.core.polling import PollPlanner
from lumozbatch.core.records import (
    Accepted,
    Ambiguous,
    Completed,
    Failed,
    Intent,
    Record,
    Unsent,
)
from lumozbatch.core.records import Downloaded as DownloadedRecord
from lumozbatch.core.retry import Failure, decide_fetch, decide_run
from lumozbatch.core.webhook import Action, Delivery, KnownJob, Verdict, decide, hook_url, records_for
from lumozbatch.errors import AuthenticationError, ConfigError, Interrupted, LumozbatchError
from lumozbatch.shell.api import ApiCallError, LumozClient
from lumozbatch.shell.download import DOWNLOAD_DEADLINE, DownloadError, Downloaded, download
from lumozbatch.shell.ledger import LedgerWriteError
from lumozbatch.shell.outputs import KnownOutput, Outputs, OutputTree, object_stem
from lumozbatch.shell.done_outputs import done_identities
from lumozbatch.shell.reconcile import kept_outputs, shown_name
from lumozbatch.shell.results import identity_key
from lumozbatch.shell.services import run_with_services
from lumozbatch.shell.store import BatchStore

__all__ = ["BatchRunner", "Hooks", "RunOptions", "RunOutcome", "exit_code_for", "run_batch"]


@dataclass(frozen=True, slots=True)
class Hooks:
    """Webhooks for a run (SPEC 8): every ``run`` carries ``url`` plus its job's and attempt's
    path, authenticated under ``secret``; ``BatchRunner.record_delivery`` records what comes."""

    url: str  # the public --webhook-url
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Knobs of one run (defaults fit the real API)."""

    concurrency: int = 8
    #: A sent ``run`` may take this long to be answered and recorded, even after Ctrl-C
    #: (longer than the client's own deadline on a call, which normally ends it first).
    shield_seconds: float = 150.0
    #: Stop polling a job after this long (it stays in flight; ``resume`` polls it again).
    max_poll_seconds: float = 3600.0
    #: Give up downloading after this many refreshed URLs (the job stays completed).
    max_refreshes: int = 3
    #: Poll jobs found in flight at start at once (their results may be waiting).
    resume_poll_delay: float = 0.0
    #: Stop the run after this many calls in a row exhausted their retries.
    max_consecutive_give_ups: int = 3
    #: A whole download may take this long (then it is retried).
    download_deadline: float = DOWNLOAD_DEADLINE
    #: The done jobs results.jsonl lacks, found before the run (``shell.outputs_check``);
    #: None: the run reads results.jsonl and checks every done job itself.
    rowless: frozenset[str] | None = None


@dataclass(slots=True)
class RunOutcome:
    """What a run left behind: ledger counts and the exit code SPEC.md gives them."""

    counts: dict[str, int]
    exit_code: int
    calls: dict[str, int] = field(default_factory=dict)  # requests this run made, by kind
    #: with webhooks: deliveries recorded by result, ``polls_saved`` and ``relinked`` jobs
    webhooks: dict[str, int] = field(default_factory=dict)


def exit_code_for(counts: Mapping[str, int]) -> int:
    """0 when every live job is downloaded, else 1 (failed, ambiguous, or left pending):
    from the store's ``counts()``, not a scan of every job."""
    return 0 if counts["done"] == counts["total"] else 1


_PROBING, _OPEN, _DEAD = "probing", "open", "dead"
#: paid for (or being paid for) and not yet kept on disk: followed even when retired
_PAID_NOT_KEPT = frozenset({JobState.SUBMITTED, JobState.COMPLETED, JobState.MISSING})
_QUEUE_WINDOW = 256  # pending jobs queued ahead of the workers (at least 4 per worker)
_QUEUE_LOOKAHEAD = 10_000  # how far along the stream to look while queued models wait for a probe


class _Gates:
    """Per-model admission: the first ``run`` goes alone, the rest wait for its answer."""

    def __init__(self, proven: set[str]) -> None:
        self.state: dict[str, str] = {m: _OPEN for m in proven}
        self.dead_reason: dict[str, tuple[str, str | None]] = {}
        self.changed = trio.Event()

    def admit(self, model: str) -> bool:
        """True when a job of ``model`` may be submitted now (possibly as the probe)."""
        state = self.state.get(model)
        if state is None:
            self.state[model] = _PROBING
            return True
        return state == _OPEN

    def settle(self, model: str, outcome: str, reason: tuple[str, str | None] | None = None) -> None:
        """The probe ended: ``open`` (model exists), ``dead`` (404), or ``retry`` (unknown yet)."""
        if self.state.get(model) == _DEAD:
            return
        if outcome == "open":
            self.state[model] = _OPEN
        elif outcome == "dead":
            self.state[model] = _DEAD
            self.dead_reason[model] = reason or ("model not found", "model_not_found")
        elif self.state.get(model) == _PROBING:
            del self.state[model]  # someone else probes next
        self.changed.set()
        self.changed = trio.Event()


class BatchRunner:
    """Runs every non-retired unfinished job of an open store to completion (or a stop).

    ``ledger`` is any :class:`~lumozbatch.shell.store.BatchStore` (the file ledger, or a
    ``MemoryStore``); the runner only reads jobs through it and appends typed records.
    ``outputs`` is where outputs, results.jsonl go (default: the folder ``out_dir``, which
    is the batch's local home either way).
    """

    def __init__(
        self,
        ledger: BatchStore,
        client: LumozClient,
        storage: httpx.AsyncClient,
        out_dir: Path,
        *,
        options: RunOptions = RunOptions(),
        sink: EventSink = discard,
        planner: PollPlanner | None = None,
        rand: Callable[[], float] = random.random,
        embed: Callable[[Path, dict[str, Any]], object] | None = None,
        result_extra: Mapping[str, Any] | None = None,
        hooks: Hooks | None = None,
        outputs: Outputs | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.storage = storage
        self.out_dir = out_dir
        self.outputs: Outputs = outputs if outputs is not None else OutputTree(out_dir)
        self.options = options
        self.sink = sink
        self.planner = planner if planner is not None else PollPlanner()
        self.rand = rand
        self.embed = embed
        self.result_extra = dict(result_extra or {})
        self.calls = {"run": 0, "check": 0, "download": 0}
        self.interrupts = 0
        self._auth_error: ApiCallError | None = None
        self._work: trio.CancelScope | None = None
        self._shields: set[trio.CancelScope] = set()
        self._stopping = False
        self._accepted_at: dict[str, float] = {}
        # Models whose runs the API has accepted (an active job submitted, completed, done or
        # missing): their first request need not go alone. From counts, not a scan of every job.
        answered = ("submitted", "completed", "done", "missing")
        proven = {m for m, n in ledger.counts_by("model").items() if any(n.get(s, 0) for s in answered)}
        self._gates = _Gates(proven)
        # Jobs already submitted come first: they hold money and their outputs expire. A
        # retired job whose run was sent is followed too: its output was paid for.
        self._queue: deque[str] = deque(j.identity for j in ledger.iter_jobs(_PAID_NOT_KEPT))
        # Pending jobs are streamed from the store into the queue a window at a time: a run
        # holds the jobs in flight and a window, never every pending identity of the batch.
        self._stream: Iterator[JobRecord] = ledger.iter_jobs([JobState.PENDING], retired=False)
        self._window = max(_QUEUE_WINDOW, 4 * options.concurrency)
        self._purged: set[str] = set()  # dead models whose queued jobs were failed
        self._unpurged = False  # jobs queued since the last purge, while some model is dead
        self._give_ups = 0  # consecutive calls that exhausted their retries
        self._unshown = 0  # outputs kept but not shown under their names (a broken folder)
        self._reached = False  # has the API answered anything in this run?
        self._unreachable: ApiCallError | None = None  # refused before it ever answered
        self.hooks = hooks
        self.webhooks: dict[str, int] = {}  # deliveries by Action value, polls_saved, relinked
        self._sent_at: dict[str, float] = {}  # identity -> when its run (with a webhook) left
        self._hook_locks: dict[str, trio.Lock] = {}
        self._news = trio.Event()  # set (and replaced) when a delivery or a latency is recorded
        self._carried: set[str] = set()  # identities a worker is carrying now
        self._workers: trio.Nursery | None = None

    # -- public -------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Ctrl-C. First: stop submitting, let sent runs be recorded. Second: stop now."""
        self.interrupts += 1
        if self.interrupts == 1:
            self._emit(Event("interrupted", time=trio.current_time(), reason="stopping: recording answers of requests already sent"))
            self._stop()
        else:
            # The ledger stays consistent: an unanswered run replays as ambiguous.
            for scope in list(self._shields):
                scope.shield = False
                scope.cancel()
            self._stop()

    async def run(self) -> RunOutcome:
        """Work until every job is settled, then return; raises on 401 or Ctrl-C."""
        await self._reconcile_results()
        try:
            await self._work_through()
        finally:
            with trio.CancelScope(shield=True):
                await self._flush_results()
        return self._outcome()

    async def _flush_results(self) -> None:
        """results.jsonl whole in the store however the run ends (a store that refuses it now
        loses nothing: the next run adds the missing rows from the ledger)."""
        try:
            await trio.to_thread.run_sync(self.outputs.flush_results)
        except OSError as exc:
            self._emit(Event("warning", time=trio.current_time(), reason=f"could not write results.jsonl to {self.outputs.shown}: {exc}; the next run writes it"))

    async def _work_through(self) -> None:
        with trio.CancelScope() as work:
            self._work = work
            if self._stopping:
                work.cancel()
            try:
                async with trio.open_nursery() as workers:
                    self._workers = workers
                    for _ in range(max(1, self.options.concurrency)):
                        workers.start_soon(self._worker)
            except BaseExceptionGroup as group:
                # A domain error in a worker (the disk refused a ledger write...) reaches the
                # CLI as itself, with its own message and exit code, not as a group.
                domain = _first_domain_error(group)
                if domain is None:
                    raise
                raise domain from group

    def _outcome(self) -> RunOutcome:
        if self._auth_error is not None:
            raise AuthenticationError(
                "the API refused the key (401): check LUMOZ_API_KEY",
                details=[self._auth_error.describe()],
            )
        if self._unreachable is not None:
            raise ConfigError(
                f"cannot reach the API at {self.client.base_url}: {self._unreachable.describe()}",
                details=["nothing was sent; check --base-url / LUMOZ_BASE_URL and that the service is up, then run again"],
            )
        if self.interrupts:
            raise Interrupted(
                "interrupted; every request sent was recorded, the batch is resumable",
                details=[f"continue with: lumozbatch resume {self.outputs.shown}"],
            )
        counts = self.ledger.counts()
        return RunOutcome(
            counts=counts,
            exit_code=1 if self._unshown else exit_code_for(counts),
            calls=dict(self.calls),
            webhooks=dict(self.webhooks),
        )

    # -- scheduling ---------------------------------------------------------------------

    def _gave_up(self, reason: str) -> None:
        """A call exhausted its retries. A few in a row with nothing working in between: the
        API is down or refusing; stop rather than grind through every job (resume later)."""
        self._give_ups += 1
        if self._give_ups >= self.options.max_consecutive_give_ups and not self._stopping:
            self._emit(Event("warning", time=trio.current_time(), reason=f"the API keeps failing ({reason}); stopping this run, resume it later"))
            self._stop()

    def _note_reach(self, err: ApiCallError | None) -> bool:
        """Whether the call reached the API (an answer, or a request that left our side)."""
        if err is not None and err.failure is Failure.CONNECT:
            return False
        self._reached = True
        return True

    def _refused_from_the_start(self, err: ApiCallError) -> bool:
        """A connection refused (or a name that does not resolve) before the API ever
        answered in this run is a configuration error: the caller records what it must,
        then the run stops (``_stop_unreachable``), not after every retry."""
        return err.failure is Failure.CONNECT and not self._reached

    def _stop_unreachable(self, err: ApiCallError) -> None:
        self._unreachable = err
        self._stop()

    def _stop(self) -> None:
        self._stopping = True
        if self._work is not None:
            self._work.cancel()

    async def _next_job(self) -> JobRecord | None:
        """The next job a worker may carry: jobs in flight first, then pending ones whose model
        is admitted (the head of the queue, unless its model's probe is still out)."""
        job = self.ledger.job
        while not self._stopping:
            self._fill(self._window)
            if self._unpurged or self._gates.dead_reason.keys() - self._purged:
                await self._purge_dead_models()
            queue = self._queue
            for position, identity in enumerate(queue):
                rec = job(identity)
                if rec.state != JobState.PENDING or self._gates.admit(rec.model):
                    del queue[position]  # position 0 but while a model's probe is out: O(1)
                    return rec
            if not queue:
                return None
            if self._fill(min(len(queue) + self._window, _QUEUE_LOOKAHEAD)):
                continue  # look further along the stream for a model that is admitted
            await self._gates.changed.wait()  # every queued job waits for a probe's answer
        return None

    def _fill(self, size: int) -> bool:
        """Top the queue up to ``size`` from the stream of pending jobs; True if it grew."""
        queue, grew = self._queue, False
        while len(queue) < size:
            rec = next(self._stream, None)
            if rec is None:
                break
            queue.append(rec.identity)
            grew = True
        self._unpurged = self._unpurged or (grew and bool(self._gates.dead_reason))
        return grew

    async def _purge_dead_models(self) -> None:
        self._purged |= self._gates.dead_reason.keys()
        self._unpurged = False
        dead = self._purged
        queued = [self.ledger.job(i) for i in self._queue]
        doomed = [j for j in queued if j.state == JobState.PENDING and j.model in dead]
        if not doomed:
            return
        gone = {rec.identity for rec in doomed}
        self._queue = deque(i for i in self._queue if i not in gone)
        await self._fail_unsent(doomed)

    async def _fail_unsent(self, doomed: list[JobRecord]) -> None:
        """Fail jobs of a model the API does not know, without sending them."""
        records = []
        for rec in doomed:
            reason, code = self._gates.dead_reason[rec.model]
            records.append(Failed(id=rec.identity, reason=f"not sent: {reason}", code=code, billed=False))
        await self.ledger.append(*records)  # PENDING --failed--> FAILED: never sent, not billed
        for record, rec in zip(records, doomed):
            self._emit(self._job_event("failed", rec, reason=record.reason, code=record.code))

    async def _worker(self) -> None:
        while (rec := await self._next_job()) is not None:
            await self._carry(rec.identity)

    async def _carry(self, identity: str) -> None:
        """One job from where it stands to done (or as far as it goes in this run)."""
        if identity in self._carried:
            return  # a delivery's carrier took it before a worker reached it in the queue
        self._carried.add(identity)
        try:
            await self._carry_on(identity)
        finally:
            self._carried.discard(identity)
            self._forget_if_done(identity)

    async def _carry_recorded(self, identity: str, recorded: trio.Event) -> None:
        """A delivery's carrier: started before its record is appended (so that the run
        cannot end in between), it takes the job on once the record is in."""
        try:
            await recorded.wait()
            await self._carry_on(identity)
        finally:
            self._carried.discard(identity)
            self._forget_if_done(identity)

    def _forget_if_done(self, identity: str) -> None:
        """A downloaded job's times are needed no more: dropped, so that what the run keeps
        per job lasts only while the job is in flight (not 100,000 entries at the end)."""
        if self.ledger.job(identity).state is JobState.DONE:
            self._accepted_at.pop(identity, None)
            self._sent_at.pop(identity, None)

    async def _carry_on(self, identity: str) -> None:
        rec = self.ledger.job(identity)
        if rec.state == JobState.PENDING:
            await self._submit(rec)
        rec = self.ledger.job(identity)
        if rec.state == JobState.AMBIGUOUS and identity in self._sent_at:
            # its run carried a webhook: the run does not end while it may still come
            await self._await_push(rec, JobState.AMBIGUOUS, self._sent_at[identity])
        rec = self.ledger.job(identity)
        if rec.state == JobState.SUBMITTED:
            await self._poll(rec)
        rec = self.ledger.job(identity)
        if rec.state in (JobState.COMPLETED, JobState.MISSING):
            await self._fetch(rec)

    # -- submit -------------------------------------------------------------------------

    async def _submit(self, rec: JobRecord) -> None:
        attempt = 1  # core.retry counts attempts from 1
        settled = False
        try:
            while not self._stopping:
                outcome = await self._send_run(rec)
                if outcome is None or self.ledger.job(rec.identity).state is not JobState.SUBMITTING:
                    # accepted, or a webhook relinked it while the answer was on its way (or lost)
                    settled = True
                    self._gates.settle(rec.model, "open")
                    return
                reason = outcome.describe()
                if self._refused_from_the_start(outcome):
                    await self.ledger.append(Unsent(id=rec.identity, reason=reason))
                    self._stop_unreachable(outcome)
                    return
                decision = decide_run(
                    outcome.failure, outcome.status, outcome.code, attempt, rand=self.rand()
                )
                action = decision.action
                if action == "retry":
                    await self.ledger.append(Unsent(id=rec.identity, reason=reason))
                    self._emit(self._job_event("retry", rec, endpoint="run", reason=reason, delay=decision.delay))
                    attempt += 1
                    await trio.sleep(decision.delay)
                    continue
                if action == "ambiguous":
                    await self.ledger.append(Ambiguous(id=rec.identity, reason=reason))
                    self._emit(self._job_event("ambiguous", rec, reason=reason))
                    return
                if action in ("fail_job", "fail_model"):
                    await self.ledger.append(
                        Failed(id=rec.identity, reason=reason, code=outcome.code, billed=False)
                    )
                    self._emit(self._job_event("failed", rec, reason=reason, code=outcome.code))
                    settled = True
                    if action == "fail_model":
                        self._gates.settle(rec.model, "dead", (reason, outcome.code or "model_not_found"))
                    else:
                        self._gates.settle(rec.model, "open")  # the model exists; params did not pass
                    return
                if action == "fatal_auth":
                    await self.ledger.append(Unsent(id=rec.identity, reason=reason))
                    self._auth_error = outcome
                    self._stop()
                    return
                # give_up (or anything new): nothing was created; the job stays pending.
                await self.ledger.append(Unsent(id=rec.identity, reason=reason))
                self._emit(self._job_event("warning", rec, reason=f"run not sent after {attempt} attempts: {reason}"))
                self._gave_up(reason)
                return
        finally:
            if not settled:
                self._gates.settle(rec.model, "retry")

    async def _send_run(self, rec: JobRecord) -> ApiCallError | None:
        """One ``run``: intent, send, record; None when accepted. Shielded once the slot is ours."""
        async with self.client.slot() as slot:
            with trio.CancelScope(shield=True) as shield:
                shield.deadline = trio.current_time() + self.options.shield_seconds
                self._shields.add(shield)
                try:
                    return await self._send_run_shielded(rec, slot)
                finally:
                    self._shields.discard(shield)
        # Reached only when the shield's deadline (or a second Ctrl-C) cut the call short:
        # the run may have been received, so the job is ambiguous (a replay says the same).
        return ApiCallError(
            Failure.SENT_NO_ANSWER,
            message=f"no answer recorded within {self.options.shield_seconds:.0f}s",
        )

    async def _send_run_shielded(self, rec: JobRecord, slot: Any) -> ApiCallError | None:
        attempt = self.ledger.job(rec.identity).attempts + 1
        await self.ledger.append(Intent(id=rec.identity, attempt=attempt))
        self.calls["run"] += 1
        params = rec.params
        if self.hooks is not None:
            params = {**params, "webhook": hook_url(self.hooks.url, self.hooks.secret, rec.identity, attempt)}
            self._sent_at[rec.identity] = trio.current_time()
        try:
            answer = await self.client.run(rec.model, params, slot=slot)
        except ApiCallError as err:
            if self._note_reach(err):
                self._emit(self._job_event("submit", rec))  # it left: a request was sent
            return err
        self._note_reach(None)
        self._emit(self._job_event("submit", rec))
        now = trio.current_time()
        if self.ledger.job(rec.identity).state is not JobState.SUBMITTING:
            self._late_answer(rec, answer.request_id)
            return None
        records: list[Record] = []
        if answer.request_id is not None:
            records.append(Accepted(id=rec.identity, request_id=answer.request_id))
        if answer.output:  # finished synchronously (possibly without a request_id)
            records.append(
                Completed(id=rec.identity, request_id=answer.request_id, url=answer.output, output_type=answer.output_type)
            )
        try:
            await self.ledger.append(*records)
        except LedgerWriteError as exc:
            # Replay will call this job ambiguous: its paid request's id must reach the user.
            what = f"request {answer.request_id}" if answer.request_id is not None else f"output {answer.output}"
            exc.details.insert(0, f"{what} of job {rec.job} {rec.key} was accepted (and may be billed) but could not be recorded; it will show as ambiguous")
            raise
        self._accepted_at[rec.identity] = now
        self._give_ups = 0
        self._emit(self._job_event("accepted", rec, request_id=answer.request_id))
        if answer.output:
            self.planner.observe(rec.model, 0.0)
            self._emit(self._job_event("completed", rec, request_id=answer.request_id, url=answer.output))
        return None

    # -- poll ---------------------------------------------------------------------------

    async def _poll(self, rec: JobRecord) -> None:
        identity = rec.identity
        request_id = rec.request_id
        assert request_id is not None
        resumed = identity not in self._accepted_at
        started = self._accepted_at.get(identity, trio.current_time())
        delay = self.options.resume_poll_delay if resumed else self.planner.first_delay(rec.model)
        # its run carried a webhook: not polled while the result is plausibly on its way
        pushed = self.hooks is not None and identity in self._sent_at and not resumed
        if pushed:
            if await self._await_push(rec, JobState.SUBMITTED, started):
                return  # the webhook came; the worker goes on from where it left the job
            delay = 0.0  # overdue: poll now, then as without webhooks
        give_up_at = trio.current_time() + self.options.max_poll_seconds
        polls = 0
        attempt = 1
        while True:
            await trio.sleep(max(0.0, delay))
            if trio.current_time() >= give_up_at:
                self._emit(self._job_event("warning", rec, reason=f"request {request_id} still not done after {self.options.max_poll_seconds:.0f}s; left in flight"))
                return
            self.calls["check"] += 1
            try:
                answer = await self.client.check(request_id)
            except ApiCallError as err:
                if self._refused_from_the_start(err):
                    self._stop_unreachable(err)
                    return  # still in flight; the next run polls it again
                self._note_reach(err)
                decision = decide_fetch(err.failure, err.status, attempt, rand=self.rand())
                if decision.action == "retry":
                    attempt += 1
                    delay = decision.delay
                    self._emit(self._job_event("retry", rec, endpoint="check", reason=err.describe(), delay=delay))
                    continue
                if decision.action == "fatal_auth":
                    self._auth_error = err
                    self._stop()
                    return
                if decision.action == "fail_job":
                    # The API does not know this request (or refuses to say): it was accepted,
                    # so count it billed; --retry-failed sends it again.
                    reason = f"check refused: {err.describe()}"
                    await self.ledger.append(Failed(id=identity, reason=reason, code=err.code, billed=True))
                    self._emit(self._job_event("failed", rec, reason=reason, code=err.code))
                    return
                self._emit(self._job_event("warning", rec, reason=f"check of request {request_id} gave up: {err.describe()}; left in flight"))
                self._gave_up(err.describe())
                return
            self._note_reach(None)
            polls += 1
            attempt = 1
            self._give_ups = 0
            now = trio.current_time()
            if self.ledger.job(identity).state is not JobState.SUBMITTED:
                return  # a webhook recorded it while this check was out
            if answer.completed:
                await self.ledger.append(
                    Completed(id=identity, request_id=request_id, url=answer.output, output_type=answer.output_type)
                )
                # after a wait for a lost webhook, the first poll measures the wait, not the API
                if not resumed and not (pushed and polls == 1):
                    self._observe(rec.model, now - started)
                self._emit(self._job_event("completed", rec, request_id=request_id, url=answer.output))
                return
            if answer.failed:
                reason = answer.error or "failed"
                await self.ledger.append(Failed(id=identity, reason=reason, code="failed", billed=True))
                self._emit(self._job_event("failed", rec, reason=reason, code="failed", request_id=request_id))
                return
            self._emit(self._job_event("progress", rec, request_id=request_id, progress=answer.progress))
            delay = self.planner.next_delay(rec.model, elapsed=now - started, progress=answer.progress, polls=polls)

    # -- webhooks -----------------------------------------------------------------------

    def _observe(self, model: str, latency: float) -> None:
        self.planner.observe(model, latency)
        self._wake()  # the jobs waiting for their webhooks: "overdue" may have moved

    def _wake(self) -> None:
        self._news.set()
        self._news = trio.Event()

    async def _await_push(self, rec: JobRecord, state: JobState, since: float) -> bool:
        """Wait while the job stays in ``state`` and its webhook is plausibly on its way
        (``PollPlanner.overdue_after`` from ``since``); True once a delivery moved it, False
        once it is overdue."""
        identity = rec.identity
        while self.ledger.job(identity).state is state:
            due = since + self.planner.overdue_after(rec.model)
            if trio.current_time() >= due:
                return False
            news = self._news
            with trio.move_on_at(due):
                await news.wait()
        return True

    def _late_answer(self, rec: JobRecord, request_id: int | None) -> None:
        """The run's answer came after a webhook relinked the job: nothing more to record."""
        known = self.ledger.job(rec.identity).request_id
        if request_id is not None and request_id != known:
            self._emit(self._job_event("warning", rec, reason=f"the run answered request {request_id}, its webhook named {known}; following {known}"))

    async def record_delivery(self, delivery: Delivery) -> Verdict:
        """The receiver's ``record``: what an authenticated delivery means for its job
        (``core.webhook.decide``), recorded durably before the verdict is returned (and
        answered). Deliveries for one job are taken one at a time, so a duplicate is answered
        only once the first one's record is durable."""
        target = delivery.target
        assert target is not None  # set by the receiver once the path verified
        identity = target.job
        lock = self._hook_locks.setdefault(identity, trio.Lock())
        async with lock:
            try:
                rec: JobRecord | None = self.ledger.job(identity)
            except KeyError:
                rec = None
            known = None if rec is None else KnownJob(rec.state.value, rec.request_id, rec.attempts)
            verdict = decide(known, delivery)
            records = records_for(identity, verdict, delivery)
            if records:
                recorded = trio.Event()
                self._carry_later(identity, recorded)
                try:
                    await self.ledger.append(*records)  # returns once durable
                finally:
                    recorded.set()
        if not lock.locked() and self._hook_locks.get(identity) is lock:
            del self._hook_locks[identity]  # no other delivery of this job waits for it
        self._count_webhook(verdict.action.value)
        if records and (delivery.completed or delivery.failed):
            self._count_webhook("polls_saved")  # a result no /check had to fetch
        self._emit(self._webhook_event(rec, identity, delivery, verdict))
        if rec is not None and records:
            self._delivered(rec, verdict, delivery)
        return verdict

    def _count_webhook(self, name: str) -> None:
        self.webhooks[name] = self.webhooks.get(name, 0) + 1

    def _delivered(self, rec: JobRecord, verdict: Verdict, delivery: Delivery) -> None:
        """A delivery was recorded: tell the display, learn its latency, and see that
        someone carries the job on (its own worker if one waits for it)."""
        identity = rec.identity
        now = trio.current_time()
        if verdict.action is Action.RELINK:
            self._count_webhook("relinked")
            self._accepted_at.setdefault(identity, self._sent_at.get(identity, now))
            self._emit(self._job_event("accepted", rec, request_id=delivery.request_id))
        if delivery.completed or delivery.failed:
            accepted = self._accepted_at.get(identity)
            if accepted is not None:
                self._observe(rec.model, now - accepted)
        if delivery.completed:
            self._emit(self._job_event("completed", rec, request_id=delivery.request_id, url=delivery.output))
        elif delivery.failed:
            self._emit(self._job_event("failed", rec, reason=delivery.error, code="failed", request_id=delivery.request_id))
        self._wake()

    def _carry_later(self, identity: str, recorded: trio.Event) -> None:
        """A job no task carries (an ambiguous job of an earlier run, relinked now) gets a
        carrier to its output, unless the run is over (then the next run downloads it)."""
        if identity in self._carried:
            return
        if self._workers is None:  # the workers are not started yet: they take it first
            if identity not in self._queue:
                self._queue.appendleft(identity)
            return
        try:
            self._workers.start_soon(self._carry_recorded, identity, recorded)
        except RuntimeError:  # the workers' nursery is closed: the run is ending
            return
        self._carried.add(identity)

    def _webhook_event(self, rec: JobRecord | None, identity: str, delivery: Delivery, verdict: Verdict) -> Event:
        """The ``webhook`` event: never the path, its tag or the secret."""
        target = delivery.target
        return Event(
            "webhook",
            time=trio.current_time(),
            job=rec.job if rec is not None else None,
            identity=identity,
            key=identity[:12],
            model=rec.model if rec is not None else None,
            attempt=target.attempt if target is not None else None,
            request_id=delivery.request_id,
            status=delivery.status,
            result=verdict.action.value,
            http_status=verdict.status,
            reason=verdict.reason if not verdict.accepted else None,
            received=sum(self.webhooks.get(a.value, 0) for a in Action),
            polls_saved=self.webhooks.get("polls_saved", 0),
        )

    # -- download -----------------------------------------------------------------------

    async def _fetch(self, rec: JobRecord) -> None:
        identity = rec.identity
        url = rec.url
        assert url is not None
        attempt = 1
        refreshes = 0
        while True:
            self.calls["download"] += 1
            try:
                # Into the store, by identity: no name is touched until the output is whole.
                got = await download(
                    self.storage, url, self.outputs.staging, object_stem(identity),
                    deadline=self.options.download_deadline, embed=self._embedder(rec),
                )
                # Recorded done only once the store holds it (an upload confirmed).
                await trio.to_thread.run_sync(self.outputs.keep, got)
            except OSError as exc:
                # The local disk refused the file (read-only, full, a file where a folder goes):
                # the job stays paid-for, and the run stops rather than pay for more it cannot keep.
                why = f"cannot write {exc.filename or rec.filename}: {exc.strerror or exc}"
                await self._download_failed(rec, why)
                if not self._stopping:
                    self._emit(Event("warning", time=trio.current_time(), reason=f"{why}; stopping this run: fix the output folder, then resume"))
                    self._stop()
                return
            except DownloadError as err:
                if err.permanent:
                    await self._download_failed(rec, err.message)
                    return
                decision = decide_fetch(err.failure, err.status, attempt, rand=self.rand(), endpoint="download")
                if decision.action == "refresh":
                    if refreshes >= self.options.max_refreshes:
                        await self._download_failed(rec, f"the output URL keeps expiring: {err.message}")
                        return
                    refreshes += 1
                    fresh = await self._refresh(rec)
                    if fresh is None:
                        await self._download_failed(rec, f"{err.message}; no fresh URL from check")
                        return
                    url = fresh
                    continue
                if decision.action == "retry":
                    attempt += 1
                    self._emit(self._job_event("retry", rec, endpoint="download", reason=err.message, delay=decision.delay))
                    await trio.sleep(decision.delay)
                    continue
                await self._download_failed(rec, err.message)
                return
            await self._keep(rec, got)
            return

    async def _keep(self, rec: JobRecord, got: Downloaded) -> None:
        """A verified output is in the store: record it, then show it under its name (an
        active job's only: a retired job's name may belong to the manifest's jobs now)."""
        name = shown_name(rec, got.ext)
        identity = rec.identity
        await self.ledger.append(
            DownloadedRecord(id=identity, file=name, sha256=got.sha256, bytes=got.bytes, object=got.rel)
        )
        shown = not self.ledger.job(identity).retired and await self._show(rec, got.rel, name)
        row = self._result_row(self.ledger.job(identity), shown=shown)
        await trio.to_thread.run_sync(self.outputs.append_result, row)
        self._emit(self._job_event("downloaded", rec, file=row["file"], bytes=got.bytes, sha256=got.sha256))

    async def _show(self, rec: JobRecord, obj: str, name: str) -> bool:
        """Link ``name`` to the kept object; True once it shows it. A failure loses nothing
        (the output is kept and recorded; the next run shows it)."""
        # Asked of the store only when something else is already at the name (an edit, a
        # revert): most names are new, and against a remote database each lookup is round
        # trips the event loop would wait for. Read back on the trio thread, as every read is.
        others = _Asked(lambda: trio.from_thread.run_sync(lambda: kept_outputs(self.ledger.holders(name), rec)))
        try:
            displaced = await trio.to_thread.run_sync(self.outputs.place, obj, name, others)
        except (OSError, ValueError) as exc:
            # Nothing is lost (the output is kept and recorded), but the folder a person
            # looks at is broken: stop rather than go on filling a store nobody can see.
            why = getattr(exc, "strerror", None) or exc
            self._unshown += 1
            self._emit(self._job_event("warning", rec, reason=f"could not show the output as {name}: {why}; it is kept as {obj}"))
            if not self._stopping:
                self._emit(Event("warning", time=trio.current_time(), reason="stopping this run: fix the output folder, then resume (the outputs kept so far are shown then)"))
                self._stop()
            return False
        if displaced is not None:
            self._emit(self._job_event("warning", rec, reason=f"{name} held a file that was not one of this batch's outputs: moved to {displaced}"))
        return True

    async def _download_failed(self, rec: JobRecord, why: str) -> None:
        """Paid for, not on disk: the job stays COMPLETED (the reason is recorded) and the
        next run downloads it again."""
        reason = f"download failed: {why}"
        await self.ledger.append(Failed(id=rec.identity, reason=reason, code="download", billed=True))
        self._emit(self._job_event("warning", rec, reason=f"{reason}; resume downloads it again"))

    async def _refresh(self, rec: JobRecord) -> str | None:
        """Ask ``/check`` for a fresh output URL (the old one expired)."""
        if rec.request_id is None:
            self._emit(self._job_event("warning", rec, reason="the output URL expired and the API gave no request_id to refresh it"))
            return None
        attempt = 1
        while True:
            self.calls["check"] += 1
            try:
                answer = await self.client.check(rec.request_id)
            except ApiCallError as err:
                decision = decide_fetch(err.failure, err.status, attempt, rand=self.rand())
                if decision.action == "retry":
                    attempt += 1
                    await trio.sleep(decision.delay)
                    continue
                if decision.action == "fatal_auth":
                    self._auth_error = err
                    self._stop()
                    return None
                self._emit(self._job_event("warning", rec, reason=f"could not refresh the output URL: {err.describe()}"))
                return None
            if answer.completed and answer.output:
                return answer.output
            self._emit(self._job_event("warning", rec, reason=f"the output URL expired and check says {answer.status!r}; left completed"))
            return None

    def _embedder(self, rec: JobRecord) -> Callable[[Path], object] | None:
        if self.embed is None:
            return None
        embed = self.embed
        meta = {
            "job": rec.job,
            "identity": rec.identity,
            "model": rec.model,
            "params": rec.params,
            "variables": rec.variables,
            "request_id": rec.request_id,
            **self.result_extra,  # manifest, git commit / dirty / path
        }
        return lambda tmp: embed(tmp, meta)

    def _result_row(self, rec: JobRecord, *, shown: bool = True) -> dict[str, Any]:
        return {
            "job": rec.job,
            "identity": rec.identity,
            "variables": rec.variables,
            "model": rec.model,
            "params": rec.params,
            "request_id": rec.request_id,
            # where a person finds it: its name, or (a retired job's) its kept copy
            "file": rec.file if shown or rec.object is None else rec.object,
            "object": rec.object,
            "sha256": rec.sha256,
            "bytes": rec.bytes,
            **self.result_extra,
        }

    async def _reconcile_results(self) -> None:
        """Rows for outputs the ledger holds but results.jsonl lacks (a crash in between)."""
        lacking: Iterable[str]
        if self.options.rowless is not None:
            lacking = sorted(self.options.rowless)
        else:  # identity keys, a line at a time; done jobs streamed: flat at a million rows
            seen = await trio.to_thread.run_sync(self.outputs.result_identities)
            done = done_identities(self.ledger, retired=None)  # retired too: paid for
            lacking = (i for i in done if identity_key(i) not in seen)
        for chunk in chunked(lacking, 500):
            # still done? (rowless was found before the outputs check, which may find one gone)
            rows = [self._result_row(job) for job in map(self.ledger.job, chunk) if job.state is JobState.DONE]
            await trio.to_thread.run_sync(lambda: [self.outputs.append_result(row) for row in rows])

    # -- events -------------------------------------------------------------------------

    def _job_event(self, kind: str, rec: JobRecord, **fields: Any) -> Event:
        return Event(
            kind,
            time=trio.current_time(),
            job=rec.job,
            identity=rec.identity,
            key=rec.identity[:12],
            model=rec.model,
            **fields,
        )

    def _emit(self, event: Event) -> None:
        self.sink(event)


class _Asked(Iterable[KnownOutput]):
    """A list computed the first time it is iterated (then kept)."""

    def __init__(self, ask: Callable[[], list[KnownOutput]]) -> None:
        self._ask = ask
        self._answer: list[KnownOutput] | None = None

    def __iter__(self) -> Iterator[KnownOutput]:
        if self._answer is None:
            self._answer = self._ask()
        return iter(self._answer)


def _first_domain_error(group: BaseExceptionGroup) -> LumozbatchError | None:
    for exc in group.exceptions:
        if isinstance(exc, LumozbatchError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_domain_error(exc)
            if found is not None:
                return found
    return None


async def run_batch(
    runner: BatchRunner,
    *,
    handle_sigint: bool = False,
) -> RunOutcome:
    """Run ``runner`` with the ledger's group-commit writer alongside (and Ctrl-C handling).

    With ``handle_sigint``, the first SIGINT stops submitting and lets sent runs be recorded
    (then ``Interrupted``); a second one stops at once, leaving unanswered runs ambiguous.
    """

    async def main(services: trio.Nursery) -> RunOutcome:
        await services.start(runner.ledger.run_writer)
        if handle_sigint:
            await services.start(_watch_sigint, runner)
        return await runner.run()

    return await run_with_services(main)


async def _watch_sigint(runner: BatchRunner, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            runner.interrupt()
