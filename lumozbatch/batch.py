"""The Python API: plan, apply and read the status of a batch, as the CLI does.

    import lumozbatch

    batch = lumozbatch.open_batch("manifests/x.yaml", sandbox=True)
    print(batch.plan().counts)          # what apply would do; sends nothing
    outcome = batch.apply()             # runs it; outcome.exit_code is the CLI's
    with batch.status() as state:       # what the ledger knows (a read-only snapshot)
        print(state.counts())

``resume_batch(OUTPUT_DIR|MANIFEST)`` is the batch exactly as its ledger recorded it.
``Batch.start()`` splits ``apply`` into its steps for a caller that shows the plan or asks
before sending (the CLI): it opens the ledger (taking the batch's lock), checks the folder's
rules and the generation cap, and returns a ``BatchRun`` that nothing has been written for
yet; ``BatchRun.execute()`` writes the plan and runs it.

Importing this module imports neither trio nor httpx: the run's machinery loads on use.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumozbatch.core.batchrules import check_batch_name, check_same_api, check_same_manifest
from lumozbatch.core.events import Event, EventSink, discard
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.manifest import Manifest
from lumozbatch.core.plansummary import PlanSummary, store_view, summarize_against
from lumozbatch.core.records import Batch as BatchRecord
from lumozbatch.core.records import Limits, Moved
from lumozbatch.shell.location import absolute
from lumozbatch.shell.state_choice import StateChoice

if TYPE_CHECKING:
    from lumozbatch.core.webhook import WebhookSettings
    from lumozbatch.shell.outputs import Outputs
    from lumozbatch.shell.outputs_check import OutputsCheck
    from lumozbatch.shell.planning import Plan, Resets
    from lumozbatch.shell.runner import RunOutcome
    from lumozbatch.shell.store import BatchStore
    from lumozbatch.shell.target import Target

__all__ = ["DEFAULT_CONCURRENCY", "Batch", "BatchRun", "open_batch", "resume_batch"]

DEFAULT_CONCURRENCY = 8


@dataclass
class Batch:
    """A batch and its output folder: from a manifest (``open_batch``), or, with
    ``manifest`` None, only as its ledger recorded it (``resume_batch``).

    ``out_dir`` is the batch's local home: its outputs, and its state unless ``state`` names
    a PostgreSQL database. With ``outputs_url`` (``s3://...``) the outputs go to object
    storage, and ``out_dir`` is a folder under the user's state folder (``bucket_home``)."""

    out_dir: Path
    manifest: Manifest | None = None
    manifest_path: Path | None = None
    sandbox: bool = False
    base_url: str | None = None
    api_key: str | None = None
    out_given: bool = False  # the folder was chosen (--out), not the manifest's default
    manifest_key: str | None = None  # which manifest file made the batch (shell.location)
    state: StateChoice = field(default_factory=StateChoice)
    outputs_url: str | None = None  # object storage (s3://BUCKET/PREFIX) for the outputs
    batch_name: str | None = None  # the name a shared store finds the batch by (resume/status)
    _target: Target | None = field(default=None, init=False, repr=False)

    @property
    def warnings(self) -> list[str]:
        return [str(w) for w in self.manifest.warnings] if self.manifest is not None else []

    def specs(self) -> Iterator[JobSpec]:
        """The manifest's jobs, expanded again at each call (a generator: a batch of a
        million jobs is never held as a list)."""
        from lumozbatch.core.grid import expand

        return expand(self._need_manifest("expand"))

    def target(self) -> Target:
        """Where the requests go; ``ConfigError`` (exit 3) when a real API has no key."""
        if self._target is None:
            from lumozbatch.shell.target import resolve_target

            self._target = resolve_target(self.base_url, self.sandbox, api_key=self.api_key)
        return self._target

    def plan(self) -> PlanSummary:
        """What ``apply`` would do against the ledger, if there is one. Sends nothing."""
        from lumozbatch.errors import LedgerNotFound

        manifest = self._need_manifest("plan")
        if not self.state.has_batch(self.out_dir, name=manifest.name):
            return summarize_against(manifest, self.specs(), None, out_dir=str(self.out_dir))
        try:
            reads = self.state.open_reads(self.out_dir, name=manifest.name)
        except LedgerNotFound:  # a ledger with no batch record yet: nothing was planned
            return summarize_against(manifest, self.specs(), None, out_dir=str(self.out_dir))
        with reads:
            check_batch_name(reads.batch, manifest.name, self.out_dir, planning=True)
            check_same_manifest(reads.batch, self._need_key(), self.out_dir, planning=True)
            return summarize_against(manifest, self.specs(), _compared(reads), out_dir=str(self.out_dir))

    def status(self) -> Any:
        """What the ledger knows: a read-only snapshot with the store's reads (``counts()``,
        ``iter_jobs()``, ``spend()``...); close it, or use it in a ``with``.
        ``LedgerNotFound`` (exit 2) when there is none. No network."""
        return self.state.open_reads(self.out_dir, name=self.name)

    @property
    def name(self) -> str | None:
        """The batch's name: its manifest's, else the one it is looked up by."""
        return self.manifest.name if self.manifest is not None else self.batch_name

    @property
    def where(self) -> str:
        """Where the outputs are, as a person names them: the folder, or the bucket URL."""
        return self.outputs_url or str(self.out_dir)

    def start(
        self,
        *,
        retry_failed: bool = False,
        resubmit_ambiguous: bool = False,
        regenerate_missing: bool = False,
        adopt: bool = False,
        max_generations: int | None = None,
    ) -> BatchRun:
        """Open the ledger (its lock held until the run is closed), check the folder's rules
        and the cap, and plan; only the batch's own record (new batch, or its manifest moved:
        ``adopt``) is written yet. Use it as a context manager.

        ``regenerate_missing``: pay again for outputs lost from disk that cannot be fetched
        for free. ``adopt`` (a manifest only): this manifest is the folder's batch's, moved
        or renamed."""
        from lumozbatch.shell.planning import Resets

        resets = Resets(retry_failed, resubmit_ambiguous, regenerate_missing)
        if self.manifest is not None:
            self.target()  # no key: exit 3, before the bucket or the folder is touched
        # A bucket named on the command line is checked (reachable, writable) before any state
        # is created; one the batch recorded (a shared state) once the state is read.
        early, outputs = self.outputs_url, self._open_outputs() if self.outputs_url else None
        try:
            run = self._start(resets, adopt, max_generations)
        except BaseException:
            if outputs is not None:
                outputs.close()
            raise
        try:
            if outputs is None or self.outputs_url != early:
                if outputs is not None:
                    outputs.close()
                outputs = self._open_outputs()
        except BaseException:
            run.close()
            raise
        run.outputs = outputs
        return run

    def read_outputs(self, record: dict[str, Any] | None) -> Outputs:
        """The outputs as ``status`` and ``gallery`` see them (nothing probed or sent): the
        folder, the bucket named, or the bucket the batch ``record`` says it uses."""
        from lumozbatch.shell.location import bucket_home
        from lumozbatch.shell.outputs import open_outputs

        url = self.outputs_url or (record or {}).get("out")
        home = self.out_dir if url is None or url == self.outputs_url else bucket_home(url)
        return open_outputs(url or self.out_dir, state_home=home, writable=False)

    def _open_outputs(self) -> Outputs:
        from lumozbatch.shell.outputs import open_outputs

        return open_outputs(self.outputs_url or self.out_dir, state_home=self.out_dir)

    def _start(self, resets: Resets, adopt: bool, max_generations: int | None) -> BatchRun:
        from lumozbatch.shell.state import no_ledger

        if self.manifest is None:
            if self.state.shared and not self.state.has_batch(self.out_dir, name=self.name):
                raise self.state.not_found(self.name)  # no batch: exit 2, before the key
            api = self.target().api if self.state.shared else None
            ledger = self.state.open_store(self.out_dir, name=self.name, api=api, create=False)
            starter = self._start_resume
        else:
            api = self.target().api  # no key: exit 3, before the folder is created
            self._refuse_starting_over(api)
            ledger = self.state.open_store(self.out_dir, name=self.name, api=api, create=True)
            starter = functools.partial(self._start_apply, adopt=adopt)
        check = self._check_outputs_aside(ledger)
        try:
            if self.manifest is None and ledger.batch is None:
                raise no_ledger(self.out_dir)  # an empty ledger.jsonl: nothing was planned
            run = starter(ledger, resets, max_generations)
        except BaseException:
            if check is not None:
                check.cancel()
            ledger.close()
            raise
        run.outputs_check = check
        return run

    def _check_outputs_aside(self, ledger: BatchStore) -> OutputsCheck | None:
        """A big batch in a local folder with its own ``state.db``: its outputs are checked in
        another process while this one plans (``shell.outputs_check``)."""
        from lumozbatch.shell.outputs_check import MIN_DONE, OutputsCheck
        from lumozbatch.shell.sqlite_store import SqliteStore

        if self.outputs_url is not None or not isinstance(ledger, SqliteStore) or ledger.counts()["done"] < MIN_DONE:
            return None
        return OutputsCheck.start(self.out_dir)

    def apply(
        self,
        *,
        concurrency: int | None = None,
        retry_failed: bool = False,
        resubmit_ambiguous: bool = False,
        regenerate_missing: bool = False,
        adopt: bool = False,
        max_generations: int | None = None,
        sink: EventSink = discard,
        webhook: WebhookSettings | None = None,
    ) -> RunOutcome:
        """Plan and run what is not done yet (``BatchRun.execute``), then write the gallery.
        Raises what the CLI turns into exit codes; the outcome's ``exit_code`` is 0 or 1.
        The options are ``start``'s."""
        with self.start(
            retry_failed=retry_failed,
            resubmit_ambiguous=resubmit_ambiguous,
            regenerate_missing=regenerate_missing,
            adopt=adopt,
            max_generations=max_generations,
        ) as run:
            return run.execute(concurrency=concurrency, sink=sink, webhook=webhook)

    def _need_manifest(self, what: str) -> Manifest:
        if self.manifest is None:
            raise TypeError(f"{what} needs a manifest: open the batch with open_batch")
        return self.manifest

    def _need_key(self) -> str:
        if self.manifest_key is None:
            raise TypeError("a batch opened from a manifest needs its manifest_key: use open_batch")
        return self.manifest_key

    def _start_apply(self, ledger: BatchStore, resets: Resets, cap: int | None, *, adopt: bool) -> BatchRun:
        from lumozbatch.provenance import git_info
        from lumozbatch.shell.planning import check_cap, plan_batch

        manifest, path, target, key = self._need_manifest("apply"), self.manifest_path, self.target(), self._need_key()
        batch = ledger.batch
        moved = False
        if batch is None:
            ledger.append_sync(
                BatchRecord(
                    name=manifest.name, manifest=str(path), api=target.api, manifest_key=key,
                    max_generations=manifest.max_generations, out=self.outputs_url, at=time.time(),
                )
            )
        else:
            check_batch_name(batch, manifest.name, self.out_dir)
            moved = check_same_manifest(batch, key, self.out_dir, adopt=adopt)
            check_same_api(batch, target.api, self.out_dir)
            self._follow_recorded_outputs(batch)
        plan = plan_batch(ledger, self.specs, **dataclasses.asdict(resets))
        if cap is None:
            check_cap(plan, manifest.max_generations, source="limits.max_generations")
        else:
            check_cap(plan, cap, source="--max-generations")
        if moved:  # once every check passed: the batch is this manifest's from now on
            ledger.append_sync(Moved(manifest=str(path), manifest_key=key, at=time.time()))
        if batch is not None and batch.get("max_generations") != manifest.max_generations:
            # the cap belongs to the batch: resume keeps the one last applied
            ledger.append_sync(Limits(max_generations=manifest.max_generations, at=time.time()))
        hint = ["lumozbatch", "apply", str(path)] + (["--out", self.where] if self.out_given else [])
        hint += ["--state", self.state.shown] if self.state.shared else []
        return BatchRun(
            ledger, plan, target, self.out_dir,
            name=manifest.name,
            concurrency=manifest.concurrency or DEFAULT_CONCURRENCY,
            command_hint=shlex.join(hint + (["--sandbox"] if self.sandbox else [])),
            pricing=dict(manifest.pricing) or None,
            result_extra=git_info(path),
            describe=lambda: self._describe(ledger),
        )

    def _start_resume(self, ledger: BatchStore, resets: Resets, cap: int | None) -> BatchRun:
        from lumozbatch.provenance import git_info
        from lumozbatch.shell.recorded_pricing import recorded_pricing
        from lumozbatch.shell.planning import check_cap, plan_resume

        target = self.target()
        batch = ledger.batch or {}
        check_same_api(batch, target.api, self.out_dir)
        self._follow_recorded_outputs(batch)
        plan = plan_resume(ledger, **dataclasses.asdict(resets))
        if cap is None:
            check_cap(plan, batch.get("max_generations"), source="the batch's limits.max_generations")
        else:
            check_cap(plan, cap, source="--max-generations")
        manifest = batch.get("manifest")
        if manifest and Path(manifest).is_file():
            extra = git_info(manifest)
        else:
            extra = {"manifest": manifest} if manifest else {}
        return BatchRun(
            ledger, plan, target, self.out_dir,
            name=str(batch.get("name") or self.out_dir.name),
            concurrency=DEFAULT_CONCURRENCY,
            command_hint=shlex.join(
                ["lumozbatch", "resume", self.where] + (["--state", self.state.shown] if self.state.shared else [])
            ),
            pricing=recorded_pricing(batch),
            result_extra=extra,
        )

    def _refuse_starting_over(self, api: str) -> None:
        """A batch run before without ``--state`` keeps its state in its folder; the database
        knows nothing of it, so a shared ``apply`` would plan it anew and pay for it again.
        (Importing a folder's state into PostgreSQL is not built.)"""
        from lumozbatch.errors import UsageError
        from lumozbatch.shell.state import has_batch_files

        if not self.state.shared or not has_batch_files(self.out_dir):
            return
        if self.state.has_batch(self.out_dir, name=self.name, api=api):
            return  # the database has it too: the folder's state is an older, local one
        raise UsageError(
            f"{self.out_dir} holds this batch's state from runs without --state; {self.state.shown} has no "
            f"batch {self.name!r}, so applying it there would send every job again (and pay again)",
            details=[
                "run it without --state (LUMOZBATCH_STATE) to go on with the folder's state,",
                "or move the folder aside to start the batch over in the database, knowingly",
            ],
        )

    def _follow_recorded_outputs(self, batch: dict[str, Any]) -> None:
        """A batch's outputs stay where it first put them: a shared state names the bucket, so
        a run that did not say ``--out`` follows it; one that named another place is refused
        (the outputs there would be fetched again, and the names split over two places)."""
        from lumozbatch.errors import UsageError
        from lumozbatch.shell.location import bucket_home

        recorded = batch.get("out")
        if recorded == self.outputs_url:
            return
        if recorded is not None and not self.out_given:
            self.outputs_url, self.out_dir = recorded, bucket_home(recorded)
            return
        if not self.state.shared:
            return  # the state is in the folder itself: the folder is the batch
        here = f"in {recorded}" if recorded else "in a local folder"
        raise UsageError(
            f"the batch {batch.get('name')!r} keeps its outputs {here}, not in {self.where}",
            details=[f"run it with --out {recorded}" if recorded else "run it without an s3:// --out"],
        )

    def _describe(self, store: BatchStore) -> str:
        """The text ``lumozbatch plan`` prints, against the store as it is before this run."""
        from lumozbatch.ui.plan import render_plan

        summary = summarize_against(self._need_manifest("plan"), self.specs(), _compared(store), out_dir=str(self.out_dir))
        return render_plan(summary)


@dataclass
class BatchRun:
    """A planned run holding the batch's lock: ``execute`` it (or just close it), once."""

    ledger: BatchStore  # the batch's store, locked
    plan: Plan
    target: Target
    out_dir: Path
    name: str
    concurrency: int  # the default: the manifest's limits.concurrency, else 8
    command_hint: str  # the command that continues the batch, for the summary
    pricing: dict[str, float] | None
    result_extra: dict[str, Any]
    #: The plan as ``lumozbatch plan`` prints it (None for a resumed batch), for a prompt.
    describe: Callable[[], str] | None = None
    #: Why ``index.html`` could not be written, after ``execute`` (the run is unaffected).
    gallery_problem: str | None = None
    #: Where the outputs go (``shell.outputs.open_outputs``); None: the folder ``out_dir``.
    outputs: Outputs | None = None
    #: The outputs check running in another process since the store was opened (big batches)
    outputs_check: OutputsCheck | None = None
    _recorded: bool = field(default=False, init=False, repr=False)

    def __enter__(self) -> BatchRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the lock (the ledger is durable as it is) and the outputs' local files."""
        if self.outputs_check is not None:
            self.outputs_check.cancel()
            self.outputs_check = None
        try:
            if self.outputs is not None:
                self.outputs.close()  # its temporary download folder, if any
        finally:
            self.ledger.close()

    @property
    def where(self) -> str:
        """Where the outputs are, as a person names them: the folder, or the bucket URL."""
        return self.outputs.shown if self.outputs is not None else str(self.out_dir)

    @property
    def _local(self) -> bool:
        from lumozbatch.shell.outputs import OutputTree

        return self.outputs is None or isinstance(self.outputs, OutputTree)

    def record_plan(self) -> None:
        """Write the plan's records (new jobs, retirements, resets) to the store, once, a
        chunk per transaction (a crash between two leaves a plan that the next apply completes)."""
        if not self._recorded:
            for chunk in self.plan.chunks():
                self.ledger.append_sync(*chunk)
        self._recorded = True

    def execute(
        self, *, concurrency: int | None = None, sink: EventSink = discard, webhook: WebhookSettings | None = None
    ) -> RunOutcome:
        """Write the plan to the ledger (``record_plan``), then run: events go to ``sink``,
        from ``plan`` to ``finished``; with ``webhook``, results are pushed to a receiver
        (SPEC 8). The gallery is rewritten however the run ends."""
        import trio

        from lumozbatch.session import drive
        from lumozbatch.shell.runner import RunOptions

        self.record_plan()
        rowless = self._reconcile_outputs(sink)
        sink(self._plan_event())
        options = RunOptions(concurrency=concurrency or self.concurrency, rowless=rowless)
        try:
            return trio.run(
                lambda: drive(
                    self.ledger, self.target, self.out_dir,
                    options=options, sink=sink, result_extra=self.result_extra, webhook=webhook,
                    outputs=self.outputs,
                )
            )
        finally:
            self._write_gallery()

    def summary(self) -> str:
        """The final account of the batch, from its ledger (after ``execute``, however it ended)."""
        from lumozbatch.ui.summary import render_summary

        text = render_summary(self.ledger, out_dir=self.where, command_hint=self.command_hint, pricing=self.pricing)
        if self.plan.reset_billed:
            text += (
                f"\nnote: {self.plan.reset_billed} of the retried failed jobs had been billed before they "
                "failed: each one sent again is paid again."
            )
        return text

    def _reconcile_outputs(self, sink: EventSink) -> frozenset[str] | None:
        """After the plan is recorded (a reverted edit has re-activated its jobs): every active
        done job's name shows its kept output again, for free; what is gone is fetched again.
        Returns the done jobs ``results.jsonl`` lacks when the check aside found them (None:
        the run looks for them itself)."""
        from lumozbatch.shell.reconcile import reconcile_outputs

        check, self.outputs_check = self.outputs_check, None
        # the check aside looked at the folder: its answer holds for local outputs only
        found = None
        if check is not None:
            found = check.result() if self._local else check.cancel()
        done = reconcile_outputs(
            self.ledger, self.outputs if self.outputs is not None else self.out_dir,
            suspects=found.suspects if found is not None else None,
        )
        # outputs found gone are fetched again in this run: no longer counted done
        self.plan.done -= done.missing
        self.plan.missing += done.missing
        for path in done.displaced:
            sink(Event("warning", reason=f"a file that was not one of this batch's outputs was moved to {path}"))
        if done.restored or done.adopted or done.missing:
            sink(Event("outputs", counts={"restored": done.restored, "adopted": done.adopted, "missing": done.missing}))
        return found.rowless if found is not None else None

    def _plan_event(self) -> Event:
        """The run's first event. After planning, the ledger's active jobs are exactly the
        manifest's (the others were retired), so counts and the summary cover every active job."""
        from lumozbatch.ui.view import plan_extra

        # extra: per manifest job, its total and what is already settled (the live display's rows)
        where = str(absolute(self.out_dir)) if self._local else self.where  # machines: absolute, or the URL
        return Event(
            "plan", counts=self.plan.counts(), out_dir=where, name=self.name,
            extra=plan_extra(self.ledger),
        )

    def _write_gallery(self) -> None:
        try:
            from lumozbatch.ui.gallery import write_gallery
        except ImportError:  # the gallery is optional; the outputs are what matters
            return
        try:
            write_gallery(self.out_dir, self.outputs, reads=self.ledger)
        except Exception as exc:  # noqa: BLE001 - a gallery problem must not hide the run's result
            self.gallery_problem = f"could not write the gallery: {exc}"


def _compared(reads: Any) -> Any:
    """The store as the plan compares the manifest with it: by state columns, chunk by chunk
    (no job record decoded where the store can help)."""
    from lumozbatch.shell.job_statuses import StatusesInOrder

    return store_view(reads, jobs=StatusesInOrder(reads))


def open_batch(
    manifest: str | Path,
    *,
    out: str | Path | None = None,
    sandbox: bool = False,
    base_url: str | None = None,
    api_key: str | None = None,
    state: str | None = None,
) -> Batch:
    """The batch of ``manifest`` (validated, its grid expanded), kept in ``out`` (default
    ``outputs/<name>/`` at the top of the git work tree holding the manifest, else beside
    the manifest: ``shell.location.batch_home``; an ``s3://BUCKET/PREFIX`` URL puts the outputs
    in object storage). ``sandbox``: run against a local sandbox, in-process; otherwise the
    key is ``api_key`` or ``LUMOZ_API_KEY``, the root ``base_url``, ``LUMOZ_BASE_URL`` or the
    real service. ``state``: a ``postgresql://`` URL (else ``LUMOZBATCH_STATE``, else SQLite
    in the output folder). Raises ``ManifestError`` (exit 2) for an invalid manifest."""
    from lumozbatch.manifest_io import load_manifest
    from lumozbatch.shell.location import batch_home, bucket_home, bucket_url, is_bucket_url, shown
    from lumozbatch.shell.state_choice import state_choice

    choice = state_choice(state)  # a bad URL is exit 2 before the manifest is read
    loaded = load_manifest(manifest)
    home = batch_home(manifest, loaded.name)
    url = bucket_url(str(out)) if is_bucket_url(out) else None
    if url is not None:
        out_dir = bucket_home(url)
    else:
        # The default as text shows it (relative to the current folder when inside it); --out as given.
        out_dir = Path(out) if out is not None else shown(home.out_dir)
    return Batch(
        out_dir=out_dir,
        manifest=loaded,
        manifest_key=home.manifest_key,
        manifest_path=Path(manifest),
        sandbox=sandbox,
        base_url=base_url,
        api_key=api_key,
        out_given=out is not None,
        state=choice,
        outputs_url=url,
    )


def resume_batch(
    where: str | Path,
    *,
    sandbox: bool = False,
    base_url: str | None = None,
    api_key: str | None = None,
    state: str | None = None,
) -> Batch:
    """The batch recorded in ``where`` (an output folder, an ``s3://`` URL, or a manifest: its
    default folder), exactly as its ledger planned it, even if the manifest changed or is gone.
    With a shared ``state``, the batch is found by name: the manifest's, else the last part
    of the folder or URL (``outputs/<name>``)."""
    from lumozbatch.shell.location import bucket_home, bucket_url, find_out_dir, is_bucket_url, manifest_name
    from lumozbatch.shell.state_choice import state_choice

    choice = state_choice(state)
    text = str(where)
    url = bucket_url(text) if is_bucket_url(text) else None
    if url is not None:
        out_dir, name = bucket_home(url), url.rsplit("/", 1)[-1]
    elif choice.shared and not Path(text).exists() and Path(text).suffix not in (".yaml", ".yml"):
        out_dir, name = Path(text), Path(text).name  # another machine's folder: found by name
    else:
        out_dir = find_out_dir(text)
        name = manifest_name(text) if Path(text).is_file() else Path(text).resolve().name
    return Batch(
        out_dir=out_dir, sandbox=sandbox, base_url=base_url, api_key=api_key,
        state=choice, outputs_url=url, batch_name=name, out_given=url is not None,
    )
