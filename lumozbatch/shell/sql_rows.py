"""The rows both SQL stores keep (:mod:`lumozbatch.shell.sqlite_schema`,
:mod:`lumozbatch.shell.pg_schema`): a job's row with every field as JSON and a few copied into
columns, a step's row, the batch's, and the JSON they are written with."""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
from collections.abc import Iterable
from typing import Any

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None

#: the job columns copied out of the record, in table order, and the JobRecord field of each
JOB_COLUMNS: tuple[tuple[str, str], ...] = (
    ("identity", "identity"),
    ("job", "job"),
    ("job_index", "index"),
    ("repeat", "repeat"),
    ("model", "model"),
    ("filename", "filename"),
    ("state", "state"),
    ("retired", "retired"),
    ("request_id", "request_id"),
    ("file", "file"),
    ("sha256", "sha256"),
    ("bytes", "bytes"),
    ("object", "object"),
    ("reason", "reason"),
    ("code", "code"),
    ("billed", "billed"),
    ("attempts", "attempts"),
    ("paid_before", "paid_before"),
)
#: the columns a job's steps change (never its identity, manifest job, index, model or name:
#: only a ``job`` record does, and its row is upserted), and where they sit in a ``job_row``
STEPPED: tuple[str, ...] = ("state", "retired", "request_id", "file", "sha256", "bytes", "object", "reason",
                            "code", "billed", "attempts", "paid_before")
_COLUMN_AT = {column: at for at, (column, _) in enumerate(JOB_COLUMNS, 1)}
STEPPED_AT = slice(_COLUMN_AT["state"], _COLUMN_AT["paid_before"] + 1)
assert tuple(c for c, _ in JOB_COLUMNS)[STEPPED_AT.start - 1:STEPPED_AT.stop - 1] == STEPPED
#: a job's stepped values (the fields of ``STEPPED``; each column is named as its field)
stepped_values = operator.attrgetter(*STEPPED)
_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(JobRecord))
_JOB_FIELD_SET = frozenset(_JOB_FIELDS)
_STATES = {state.value: state for state in JobState}


def dumps(obj: Any) -> str:
    """JSON as the JSONL ledger writes it (no NaN: ValueError; non-ASCII kept).

    orjson first (every append writes one per step: json's encoder was a good part of an
    append's time); it writes NaN as null, so any output holding a null is written again by
    json, which refuses NaN; json too for what orjson refuses (ints beyond 64 bits).
    """
    if _orjson is not None:
        try:
            text = _orjson.dumps(obj)
        except TypeError:
            pass
        else:
            if b"null" not in text:
                return text.decode()
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except ValueError:  # ints beyond 64 bits: json reads them
            pass
    return json.loads(text)


def dumps_checked(values: Any) -> str:
    """:func:`dumps` for values already known to hold no NaN (they passed :func:`dumps`, or
    were parsed from a ledger that did): orjson, ~10x faster; json for what orjson refuses
    (ints beyond 64 bits)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(values).decode()
        except TypeError:
            pass
    return dumps(values)


def page_filters(state: str | None, retired: bool | None, *, mark: str, flag: Any) -> tuple[list[str], list[Any]]:
    """The clauses and parameters of a page of jobs after a ``seq`` (``mark``: the engine's
    placeholder; ``flag``: how it takes a bool), for both engines' ``select_jobs_page``."""
    clauses, params = [f"seq > {mark}"], []
    if state is not None:
        clauses.append(f"state = {mark}")
        params.append(state)
    if retired is not None:
        clauses.append(f"retired = {mark}")
        params.append(flag(retired))
    return clauses, params


_column_values = operator.attrgetter(*(field for _, field in JOB_COLUMNS))


def job_row(seq: int, job: JobRecord) -> tuple[Any, ...]:
    """The ``jobs`` row of ``job``: every field in ``record``, a few copied into columns
    (sqlite3 stores the bools as 0/1 and the state, a str enum, as its text).

    Generic over JobRecord's fields, so a field added to it is kept with no change here.
    """
    if _orjson is not None:
        try:  # orjson writes the dataclass itself, field by field: no dict built per row
            return (seq, *_column_values(job), _orjson.dumps(job).decode())
        except TypeError:  # ints beyond 64 bits, non-str keys: as a dict, through json
            pass
    values = {name: getattr(job, name) for name in _JOB_FIELDS}
    return (seq, *_column_values(job), dumps_checked(values))


@functools.cache
def stepped_picker(columns: tuple[str, ...]) -> Any:
    """What ``sqlite_schema.update_jobs(n, columns)`` takes of a ``job_row``: its seq, those
    columns and its record."""
    return operator.itemgetter(0, *(_COLUMN_AT[c] for c in columns), len(JOB_COLUMNS) + 1)


def changed_columns(before: tuple[Any, ...], row: tuple[Any, ...]) -> tuple[bool, ...]:
    """Which ``STEPPED`` columns differ between a job's ``stepped_values`` before a step and
    its ``job_row`` after it."""
    return tuple(map(operator.ne, before, row[STEPPED_AT]))


def job_from_record(text: str) -> JobRecord:
    """The JobRecord a ``jobs.record`` holds (fields it does not know are left out: a newer
    writer's; fields it lacks take their defaults: an older writer's)."""
    values = loads(text)
    try:
        job = JobRecord(**values)  # the common case: written by this version
    except TypeError:
        job = JobRecord(**{k: v for k, v in values.items() if k in _JOB_FIELD_SET})
    job.state = _STATES.get(job.state) or JobState(job.state)  # JobState(): ValueError if unknown
    return job


def step_row(record: dict[str, Any], text: str, job_seq: int | None) -> tuple[Any, ...]:
    """The ``steps`` row of one stamped wire record, ``text`` its JSON (:func:`dumps`)."""
    identity = record.get("id")
    return (record.get("at"), record["t"], job_seq, identity if isinstance(identity, str) else None, text)


def batch_row(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record.get("name"), record.get("manifest"), record.get("api"), record.get("v"), record.get("at"), dumps(record))


#: a job as ``job_counts`` counts it: its key (job, model, state, retired), then whether it
#: is a billed failure and its paid_before
Counted = tuple[str, str, JobState, bool, bool, int]
#: a job's move in ``job_counts``: as it was counted (None: new), as it is, its seq
CountMove = tuple["Counted | None", Counted, int]
#: what some steps change in ``job_counts``: key -> [n, billed_failed, paid_before, first]
CountChanges = dict[tuple[str, str, JobState, bool], list[int]]

_FAILED = JobState.FAILED


def counted(job: JobRecord) -> Counted:
    state = job.state
    return job.job, job.model, state, job.retired, state is _FAILED and job.billed is True, job.paid_before


def add_count_moves(changes: CountChanges, moves: Iterable[CountMove]) -> None:
    """Add to ``changes`` the jobs that moved: out of the key they were counted under, into
    the one they are counted under now; ``first`` takes the job's seq either way (no lower
    than the seq already counted under a key the job leaves). (Inline: this runs for every
    step, in trio's thread.)"""
    for was, now, seq in moves:
        if was is not None:
            key = was[:4]
            entry = changes.get(key)
            if entry is None:
                changes[key] = [-1, -was[4], -was[5], seq]
            else:
                entry[0] -= 1
                entry[1] -= was[4]
                entry[2] -= was[5]
                if seq < entry[3]:
                    entry[3] = seq
        key = now[:4]
        entry = changes.get(key)
        if entry is None:
            changes[key] = [1, now[4], now[5], seq]
        else:
            entry[0] += 1
            entry[1] += now[4]
            entry[2] += now[5]
            if seq < entry[3]:
                entry[3] = seq


def count_rows(changes: CountChanges) -> list[tuple[Any, ...]]:
    """``job_counts`` rows to add (``UPSERT_COUNT``)."""
    return [(*key, *entry) for key, entry in changes.items()]
