"""Ledger records <-> bytes, and replay: records -> the state of every job. Pure.

The ledger (``<out>/.lumozbatch/ledger.jsonl``) is one compact JSON object per line; ``"t"``
is the record type (:mod:`lumozbatch.core.records` documents each type's fields and builds
them; writers hand those typed records to :func:`encode`). Replay folds the lines' JSON
objects as they are (no class instance per line: a 100k-job ledger has half a million),
in order, through :mod:`lumozbatch.core.jobstate`'s table; a job left SUBMITTING at the end
(crash between sending a ``run`` and recording its answer) comes out AMBIGUOUS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.jobspec import RANDOM_SEED, JobSpec
from lumozbatch.core.jobstate import EOF, IllegalTransition, JobState, advance
from lumozbatch.core.records import LEDGER_VERSION, RECORD_CLASSES, Job, Record, to_wire
from lumozbatch.errors import UsageError

try:  # 4-5x faster than json for replaying big ledgers; json stays the reference
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None

__all__ = [
    "LEDGER_VERSION",
    "RECORD_TYPES",
    "STEP_TYPES",
    "BadRecord",
    "JobRecord",
    "JobState",
    "LedgerCorrupt",
    "LedgerState",
    "RecordReader",
    "apply_step",
    "decode_lines",
    "encode",
    "pin_job",
    "pin_job_record",
    "replay",
]

RECORD_TYPES = frozenset(RECORD_CLASSES)


class LedgerCorrupt(UsageError):
    """A ledger line that is not the last one cannot be read (or breaks the job lifecycle)."""

    def __init__(self, line_no: int, reason: str, *, file: str | None = None) -> None:
        where = file or "the ledger"
        super().__init__(
            f"{where} is damaged at line {line_no}: {reason}",
            details=[
                "only a torn LAST line is repaired automatically; anything earlier is kept "
                "as it is so that no paid result is forgotten",
                "move the file aside (or fix that line) before running this batch again",
            ],
        )
        self.line_no = line_no
        self.reason = reason


class BadRecord(ValueError):
    """A record that is malformed or does not fit the ledger so far (raised by ``apply``)."""


def encode(record: Record | dict[str, Any]) -> bytes:
    """One record (typed, or already in wire form) as one compact, ``\\n``-terminated UTF-8 line."""
    if isinstance(record, Record):
        record = to_wire(record)
    elif record.get("t") not in RECORD_TYPES:
        raise BadRecord(f"unknown record type {record.get('t')!r}")
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return line.encode("utf-8") + b"\n"


def decode_lines(
    data: bytes, *, file: str | None = None, require_type: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Parse ledger bytes into records.

    Returns the records and the byte offset just past the last complete, valid line. A last
    line that is torn (no newline) or unreadable is dropped, and the caller may truncate the
    file at the offset; an unreadable line followed by more lines raises
    :class:`LedgerCorrupt` (a torn write only ever damages the end). Blank lines are skipped.
    ``require_type=False`` accepts any JSON object (the same rules for other JSONL files).
    """
    reader = RecordReader(data, file=file, require_type=require_type)
    records = list(reader)
    return records, reader.end


class RecordReader:
    """:func:`decode_lines` as a stream: ``replay(reader)`` never holds every record at once
    (half the peak memory on a big ledger); ``end`` is set once it is exhausted."""

    def __init__(self, data: bytes, *, file: str | None = None, require_type: bool = True) -> None:
        self.data = data
        self.file = file
        self.require_type = require_type
        self.end = 0
        self.line_no = 0  # the line of the record last yielded (for error messages)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        data = self.data
        require_type = self.require_type
        loads = _loads
        find = data.find
        view = memoryview(data)  # slices without copying: a 100k-job ledger is ~120 MB
        # everything after the final newline is incomplete (nothing when the file ends cleanly)
        last_newline = data.rfind(b"\n")
        pos = 0
        number = 0
        try:
            while pos <= last_newline:
                newline = find(b"\n", pos)
                number += 1
                line = view[pos:newline]
                try:
                    record = loads(line)
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                    if not bytes(line).strip():
                        pos = newline + 1
                        continue  # a blank line
                    reason = f"not a JSON record ({exc})"
                else:
                    if type(record) is dict and (not require_type or type(record.get("t")) is str):
                        pos = newline + 1
                        self.line_no = number
                        yield record
                        continue
                    reason = "not a ledger record (a JSON object with a string 't')"
                if newline == last_newline:
                    return  # a damaged last line: dropped like a torn one
                raise LedgerCorrupt(number, reason, file=self.file)
        finally:
            self.end = pos  # just past the last good line, however the loop ended


def _json_loads(line: memoryview) -> Any:
    return json.loads(bytes(line))


def _fast_loads(line: memoryview) -> Any:
    try:
        return _orjson.loads(line)
    except ValueError:
        # orjson refuses what json accepts on purpose (ints beyond 64 bits): ask json
        return json.loads(bytes(line))


_loads = _json_loads if _orjson is None else _fast_loads


@dataclass(slots=True)
class JobRecord:
    """The replayed state of one identity (one planned generation)."""

    identity: str
    job: str
    index: int
    repeat: int
    model: str
    params: dict[str, Any]
    variables: dict[str, Any]
    filename: str
    known_model: bool = True
    state: JobState = JobState.PENDING
    retired: bool = False
    request_id: int | None = None
    url: str | None = None
    output_type: str | None = None
    file: str | None = None  # the output's name (relative to the output folder)
    sha256: str | None = None
    bytes: int | None = None
    object: str | None = None  # where the output is kept (``.lumozbatch/objects/...``)
    reason: str | None = None  # why it failed / is ambiguous / last download error
    code: str | None = None  # the API's error code, when it gave one
    attempts: int = 0  # `run` requests sent so far (intent records), over the job's life
    billed: bool | None = None  # for a failure: may the provider have charged it?
    #: generations earlier attempts may have cost before a ``reset`` sent the job again
    #: (a billed failure, an ambiguous run): the generation cap keeps counting them
    paid_before: int = 0
    #: its current attempt's request is known from a webhook, its run's answer was lost
    relinked: bool = False

    @property
    def key(self) -> str:
        return self.identity[:12]

    @property
    def active(self) -> bool:
        """Still part of the batch (not retired by an edited manifest)."""
        return not self.retired


@dataclass(slots=True)
class LedgerState:
    """Everything the ledger says: the batch header and every job, in planning order."""

    batch: dict[str, Any] | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    #: output name -> identities whose outputs have been shown under it, oldest first: the
    #: outputs a name may be re-pointed away from (they stay in the store)
    named: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Jobs per state name (active jobs only), plus ``retired`` and ``total`` (active)."""
        out = {state.value: 0 for state in JobState}
        retired = 0
        for record in self.jobs.values():
            if record.retired:
                retired += 1
            else:
                out[record.state.value] += 1
        out["retired"] = retired
        out["total"] = len(self.jobs) - retired
        return out

    def job(self, identity: str) -> JobRecord:
        """The job of ``identity`` (``KeyError`` if it was never planned)."""
        return self.jobs[identity]

    def all_jobs(self) -> Iterator[JobRecord]:
        """Every job ever planned, retired ones included, in planning order."""
        return iter(self.jobs.values())

    def active_jobs(self) -> list[JobRecord]:
        return [r for r in self.jobs.values() if not r.retired]

    def jobs_in(self, *states: JobState) -> list[JobRecord]:
        """Active jobs in any of ``states``, in planning order."""
        wanted = set(states)
        return [r for r in self.jobs.values() if not r.retired and r.state in wanted]

    def holders(self, file: str) -> list[JobRecord]:
        """The jobs whose outputs have been shown under the name ``file``, oldest first."""
        return [self.jobs[i] for i in self.named.get(file, ())]

    # -- applying records --------------------------------------------------------------

    def check(self, records: Iterable[Record | dict[str, Any]]) -> None:
        """Raise :class:`BadRecord` / :class:`IllegalTransition` if ``records``, applied in
        order, would not all be accepted. Changes nothing."""
        pending: dict[str, JobState | None] = {}
        has_batch = self.batch is not None
        for record in records:
            if type(record) is not dict:  # a dict is read as it is (nothing here changes it)
                record = to_wire(record)  # type: ignore[arg-type]
            kind = record.get("t")
            if kind not in RECORD_TYPES:
                raise BadRecord(f"unknown record type {kind!r}")
            if kind == "batch":
                if has_batch:
                    raise BadRecord("a second 'batch' record")
                _check_version(record)
                has_batch = True
                continue
            if kind == "moved":
                _check_moved(record, has_batch)
                continue
            if kind == "limits":
                _check_limits(record, has_batch)
                continue
            identity = record.get("id")
            if not isinstance(identity, str):
                raise BadRecord(f"a {kind!r} record without a string 'id'")
            if identity in pending:
                state = pending[identity]
            else:
                known = self.jobs.get(identity)
                state = known.state if known is not None else None
            if kind == "job":
                _check_job_fields(record)
                pending[identity] = state if state is not None else JobState.PENDING
                continue
            if state is None:
                raise BadRecord(f"a {kind!r} record for {identity[:12]}, which was never planned")
            _check_fields(kind, record)
            pending[identity] = advance(state, kind)

    def apply(self, record: Record | dict[str, Any]) -> None:
        """Fold one record (typed, or a ledger line's JSON object) into the state; on error
        raises and changes nothing."""
        if type(record) is not dict:
            record = to_wire(record)  # type: ignore[arg-type]
        kind = record.get("t")
        if kind == "job":
            self._apply_job(record)
            return
        if kind == "batch":
            if self.batch is not None:
                raise BadRecord("a second 'batch' record")
            _check_version(record)
            self.batch = record
            return
        if kind == "moved":
            _check_moved(record, self.batch is not None)
            assert self.batch is not None
            self.batch = {**self.batch, "manifest": record["manifest"], "manifest_key": record["manifest_key"]}
            return
        if kind == "limits":
            _check_limits(record, self.batch is not None)
            assert self.batch is not None
            self.batch = {**self.batch, "max_generations": record["max_generations"]}
            return
        try:
            job = self.jobs[record["id"]]
        except KeyError:
            if kind not in RECORD_TYPES:
                raise BadRecord(f"unknown record type {kind!r}") from None
            raise BadRecord(f"a {kind!r} record for a job that was never planned") from None
        except TypeError:
            raise BadRecord(f"a {kind!r} record without a string 'id'") from None
        if kind not in RECORD_TYPES:
            raise BadRecord(f"unknown record type {kind!r}")
        if apply_step(job, record):
            holders = self.named.setdefault(job.file, [])  # type: ignore[arg-type]
            if job.identity in holders:
                holders.remove(job.identity)
            holders.append(job.identity)

    def finish_replay(self) -> None:
        """End of the ledger: every job left SUBMITTING lost its answer -> AMBIGUOUS."""
        for job in self.jobs.values():
            if job.state is JobState.SUBMITTING:
                job.state = advance(job.state, EOF)
                job.reason = "the run was sent but its answer was never recorded (crash or kill)"
                job.code = None

    def _apply_job(self, record: dict[str, Any]) -> None:
        identity = record.get("id")
        if not isinstance(identity, str):
            raise BadRecord("a 'job' record without a string 'id'")
        known = self.jobs.get(identity)
        if known is None:
            _check_job_fields(record)
            self.jobs[identity] = JobRecord(
                identity=identity,
                job=record["job"],
                index=record["index"],
                repeat=record["repeat"],
                model=record["model"],
                params=record["params"],
                variables=record["variables"],
                filename=record["filename"],
                known_model=record.get("known_model", True),
            )
            return
        _check_job_fields(record)
        # re-planned (e.g. back in an edited manifest): active again, described anew; the
        # params stay as first planned, so a pinned random seed never changes
        known.retired = False
        known.job = record["job"]
        known.index = record["index"]
        known.repeat = record["repeat"]
        known.variables = record["variables"]
        known.filename = record["filename"]
        known.known_model = record.get("known_model", known.known_model)


_NAMING = frozenset({"downloaded", "stored"})  # records that show an output under a name


def apply_step(job: JobRecord, record: dict[str, Any]) -> bool:
    """Fold one record of a :data:`STEP_TYPES` type, in wire form, into ``job`` (the lifecycle
    table decides its new state); raises and changes nothing if it is refused. Returns
    whether the job's output is now shown under its name (:meth:`LedgerState.holders`).

    One record alone needs no :meth:`LedgerState.check`: this validates before it mutates.
    """
    kind = record["t"]
    new = advance(job.state, kind)
    _UPDATERS[kind](job, record, new)  # each validates what it reads before mutating
    return kind in _NAMING and job.file is not None


def _check_moved(record: dict[str, Any], has_batch: bool) -> None:
    if not has_batch:
        raise BadRecord("a 'moved' record before the 'batch' record")
    if type(record.get("manifest")) is not str or type(record.get("manifest_key")) is not str:
        raise BadRecord("a 'moved' record without a string 'manifest' and 'manifest_key'")


def _check_limits(record: dict[str, Any], has_batch: bool) -> None:
    if not has_batch:
        raise BadRecord("a 'limits' record before the 'batch' record")
    cap = record.get("max_generations", "missing")
    if cap is not None and (type(cap) is not int or cap < 0):
        raise BadRecord("a 'limits' record whose 'max_generations' is not a whole number or null")


def _check_version(record: dict[str, Any]) -> None:
    version = record.get("v")
    if type(version) is not int or version < 1:
        raise BadRecord(f"a 'batch' record with version {version!r}")
    if version > LEDGER_VERSION:
        raise BadRecord(f"ledger version {version}: written by a newer lumozbatch")


def _check_job_fields(record: dict[str, Any]) -> None:
    get = record.get
    if (  # the common case in one expression: replay checks 100k of these
        type(get("job")) is str
        and type(get("index")) is int
        and type(get("repeat")) is int
        and type(get("model")) is str
        and type(get("params")) is dict
        and type(get("variables")) is dict
        and type(get("filename")) is str
    ):
        return
    for name, kind in _JOB_FIELDS:
        if not isinstance(record.get(name), kind):
            raise BadRecord(f"a 'job' record whose {name!r} is missing or not {kind.__name__}")


_JOB_FIELDS: tuple[tuple[str, type], ...] = (
    ("job", str),
    ("index", int),
    ("repeat", int),
    ("model", str),
    ("params", dict),
    ("variables", dict),
    ("filename", str),
)


# fields a record must carry (name, type) beyond "t" and "id"
_REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "accepted": (("request_id", int),),
    "relinked": (("request_id", int),),
    "completed": (("url", str),),
    "downloaded": (("file", str),),
    "stored": (("object", str), ("file", str)),
}


# fields a record may carry (absent or null), and their type when it does
_OPTIONAL: dict[str, tuple[tuple[str, type], ...]] = {
    "downloaded": (("object", str),),
}


def _check_fields(kind: str, record: dict[str, Any]) -> None:
    for name, kind_of in _REQUIRED.get(kind, ()):
        value = record.get(name)
        if not isinstance(value, kind_of) or isinstance(value, bool):
            raise BadRecord(f"a {kind!r} record whose {name!r} is missing or of the wrong type")
    for name, kind_of in _OPTIONAL.get(kind, ()):  # checked here too: an append's later record
        value = record.get(name)  # must not fail once its earlier ones are folded
        if value is not None and type(value) is not kind_of:
            raise BadRecord(f"a {kind!r} record whose {name!r} is not a string")


# Each updater gets the job, the record and the (already legal) new state. They read every
# field they need BEFORE mutating, so a malformed record changes nothing.


def _on_retire(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    job.retired = True


def _on_intent(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    job.state = new
    job.attempts += 1
    job.relinked = False
    job.request_id = None
    job.url = None
    job.reason = None
    job.code = None
    job.billed = None


def _on_unsent(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    reason = record.get("reason")
    job.state = new
    job.reason = reason  # why the last send created nothing (informative while pending)


def _on_accepted(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    request_id = record.get("request_id")
    if type(request_id) is not int:
        _check_fields("accepted", record)
    job.state = new
    job.request_id = request_id


def _on_completed(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    url = record.get("url")
    if type(url) is not str:
        _check_fields("completed", record)
    request_id = record.get("request_id", job.request_id)
    output_type = record.get("output_type")
    job.state = new
    job.url = url
    job.request_id = request_id
    job.output_type = output_type
    job.reason = None
    job.code = None


def _on_downloaded(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    file, sha256, size = record.get("file"), record.get("sha256"), record.get("bytes")
    kept = record.get("object")
    if type(file) is not str or (kept is not None and type(kept) is not str):
        _check_fields("downloaded", record)
    job.state = new
    job.file = file
    job.sha256 = sha256
    job.bytes = size
    job.object = kept
    job.reason = None
    job.code = None


def _on_stored(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    kept, file = record.get("object"), record.get("file")
    if type(kept) is not str or type(file) is not str:
        _check_fields("stored", record)
    job.state = new
    job.object = kept
    job.file = file


def _on_missing(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    job.state = new  # MISSING: its URL (or a fresh one from /check) fetches it again
    job.object = None
    job.reason = record.get("reason")
    job.code = "missing"


def _on_failed(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    reason, code = record.get("reason"), record.get("code")
    billed = record.get("billed")
    if job.state is JobState.COMPLETED or job.state is JobState.MISSING:
        # a download failure: the output is paid for and stays where it is; keep the why
        job.reason, job.code = reason, code
        return
    job.state = new
    job.reason, job.code = reason, code
    job.billed = bool(billed) if billed is not None else job.request_id is not None


def _on_ambiguous(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    reason = record.get("reason")
    job.state = new
    job.reason = reason
    job.code = None
    job.billed = None  # unknown: that is the point


def _on_relinked(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    request_id = record.get("request_id")
    if type(request_id) is not int:
        _check_fields("relinked", record)
    job.state = new
    job.request_id = request_id
    job.relinked = True
    job.reason = None  # no longer ambiguous: the request is known
    job.code = None


def _on_reset(job: JobRecord, record: dict[str, Any], new: JobState) -> None:
    if job.state is not JobState.FAILED or job.billed:
        # AMBIGUOUS (or SUBMITTING left by a crash), a billed failure, or a paid output lost
        job.paid_before += 1
    job.state = new
    job.request_id = None
    job.url = None
    job.output_type = None
    job.reason = None
    job.code = None
    job.billed = None


_UPDATERS = {
    "retire": _on_retire,
    "intent": _on_intent,
    "unsent": _on_unsent,
    "accepted": _on_accepted,
    "completed": _on_completed,
    "downloaded": _on_downloaded,
    "stored": _on_stored,
    "missing": _on_missing,
    "failed": _on_failed,
    "ambiguous": _on_ambiguous,
    "relinked": _on_relinked,
    "reset": _on_reset,
}  # ``job``, ``batch``, ``moved`` and ``limits`` records are applied by LedgerState.apply itself
#: the records that step one job (:func:`apply_step`)
STEP_TYPES = frozenset(_UPDATERS)


def replay(records: Iterable[Record | dict[str, Any]], *, file: str | None = None, settle: bool = True) -> LedgerState:
    """Fold records (in ledger order) into a :class:`LedgerState`.

    A record that is malformed or breaks the lifecycle raises :class:`LedgerCorrupt` with its
    1-based position (its line, when ``records`` is a :class:`RecordReader`). Jobs left
    SUBMITTING at the end become AMBIGUOUS — unless ``settle=False``: a reader looking at the
    ledger of a run that is still going (its ``run`` calls are merely on the wire).
    """
    state = LedgerState()
    apply = state.apply
    number = 0
    try:
        for number, record in enumerate(records, 1):  # noqa: B007 - used in the handler
            apply(record)
    except (BadRecord, IllegalTransition, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
        line = records.line_no if isinstance(records, RecordReader) else number
        raise LedgerCorrupt(line, reason, file=file) from exc
    if settle:
        state.finish_replay()
    return state


def pin_job(spec: JobSpec, rand_seed: int) -> Job:
    """The ``job`` record that plans ``spec``; a random seed becomes ``rand_seed``.

    The identity stays the spec's (computed with the random-seed sentinel), so the same
    manifest maps to the same ledger job while the seed actually sent is recorded and reused.
    The caller draws ``rand_seed`` (``secrets.randbelow(2**32)``).
    """
    params = dict(spec.params)
    if params.get("seed") in (RANDOM_SEED, ""):
        params["seed"] = int(rand_seed)
    return Job(
        id=spec.identity,
        job=spec.job,
        index=spec.index,
        repeat=spec.repeat,
        model=spec.model,
        params=params,
        variables=dict(spec.variables),
        filename=spec.filename,
        known_model=spec.known_model,
    )


def pin_job_record(spec: JobSpec, rand_seed: int) -> dict[str, Any]:
    """:func:`pin_job` in wire form (a plain dict: tests and benchmarks edit it)."""
    return to_wire(pin_job(spec, rand_seed))
