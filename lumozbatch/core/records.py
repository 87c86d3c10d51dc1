"""Every ledger record as one small typed class (after h11's ``_events.py``). Pure.

The ledger is one JSON object per line; ``"t"`` names the record type and the other keys are
the fields below, in the order shown (the order is the byte format: an old ledger and a new
one must read alike). ``at`` is the wall-clock time the ledger stamped on the record (unix
seconds, 3 decimals); it is written last and left out while unset. Fields added after the
first version (``manifest_key``, ``object``) are likewise left out while ``None``, so every
record an older lumozbatch wrote is still written byte for byte. Every other field is always
written, ``None`` as ``null``.

==========  ==========================================================================
type        fields (besides ``at``), and what the record means
==========  ==========================================================================
batch       ``v`` ledger version, ``name`` the batch, ``manifest`` its path as typed,
            ``api`` the API it runs against, ``manifest_key`` the manifest's path in its
            git work tree, else its absolute path (what anchors the folder to one
            manifest), ``max_generations`` the manifest's cap (the batch's, for ``resume``),
            ``out`` the object-store URL its outputs go to (``None``: a local folder).
            Fields added later are ``None`` in older ledgers. First line.
moved       ``manifest``, ``manifest_key``: ``apply --adopt``: the batch's manifest was
            moved or renamed; the folder now belongs to this one.
limits      ``max_generations``: the manifest's ``limits.max_generations`` changed (``None``:
            removed); the batch record's ``max_generations`` is the cap ``resume`` keeps.
job         ``id`` identity, ``job`` manifest job id, ``index``, ``repeat``, ``model``,
            ``params`` (random seed pinned), ``variables``, ``filename``, ``known_model``:
            the job is planned (again: a re-planned identity is active again).
retire      ``id``: gone from the manifest; still followed if its ``run`` was sent.
intent      ``id``, ``attempt`` (1-based over the job's life): a ``run`` is about to be
            sent. Written (durably) before the request.
unsent      ``id``, ``reason``: that ``run`` certainly created nothing (connect error, 429).
accepted    ``id``, ``request_id``: the ``run`` answered with a request id.
completed   ``id``, ``request_id`` (may be ``None`` for a synchronous answer), ``url``,
            ``output_type``: the output URL is known (again: a fresh URL).
downloaded  ``id``, ``file`` (its name, relative to the output folder), ``sha256``,
            ``bytes``, ``object`` (where the output is kept, ``.lumozbatch/objects/...``;
            ``None`` in ledgers from before the store).
stored      ``id``, ``object``, ``file``: a done job's output is kept at ``object`` and shown
            at ``file`` (an output from before the store adopted into it, or a name that
            changed because the manifest did).
missing     ``id``, ``reason``: a done job's output is gone from its name and from the
            store: it must be fetched again (from the provider while it keeps it).
failed      ``id``, ``reason``, ``code`` (the API's error code, ``"failed"``,
            ``"download"``...), ``billed`` (may the provider have charged it?). After
            ``completed`` it is a download failure: the job stays completed.
ambiguous   ``id``, ``reason``: the ``run`` was sent and its answer lost (maybe billed).
relinked    ``id``, ``request_id``: a webhook named the request that a ``run`` whose answer
            was lost created (SPEC 8); the job is submitted, not sent again.
reset       ``id``, ``why`` (``retry-failed`` / ``resubmit-ambiguous`` /
            ``regenerate-missing``): send it again (knowingly paid again).
==========  ==========================================================================

:func:`to_wire` / :func:`from_wire` convert between these classes and the JSON objects of the
ledger's lines; :mod:`lumozbatch.core.ledger_codec` turns those into bytes and replays them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "LEDGER_VERSION",
    "RECORD_CLASSES",
    "Accepted",
    "Ambiguous",
    "Batch",
    "Completed",
    "Downloaded",
    "Failed",
    "Intent",
    "Job",
    "Limits",
    "Missing",
    "Moved",
    "Record",
    "Relinked",
    "Reset",
    "Retire",
    "Stored",
    "Unsent",
    "from_wire",
    "stamped",
    "to_wire",
]

LEDGER_VERSION = 1


class Record:
    """Base of every ledger record; ``TYPE`` is its ``"t"``."""

    __slots__ = ()
    TYPE: ClassVar[str]
    at: float | None


_record = dataclass(frozen=True, slots=True, kw_only=True)


@_record
class Batch(Record):
    TYPE: ClassVar[str] = "batch"
    v: int = LEDGER_VERSION
    name: str
    manifest: str
    api: str | None = None
    manifest_key: str | None = None
    max_generations: int | None = None
    out: str | None = None
    at: float | None = None


@_record
class Limits(Record):
    TYPE: ClassVar[str] = "limits"
    max_generations: int | None
    at: float | None = None


@_record
class Moved(Record):
    TYPE: ClassVar[str] = "moved"
    manifest: str
    manifest_key: str
    at: float | None = None


@_record
class Job(Record):
    TYPE: ClassVar[str] = "job"
    id: str
    job: str
    index: int
    repeat: int
    model: str
    params: dict[str, Any]
    variables: dict[str, Any]
    filename: str
    known_model: bool = True
    at: float | None = None


@_record
class Retire(Record):
    TYPE: ClassVar[str] = "retire"
    id: str
    at: float | None = None


@_record
class Intent(Record):
    TYPE: ClassVar[str] = "intent"
    id: str
    attempt: int
    at: float | None = None


@_record
class Unsent(Record):
    TYPE: ClassVar[str] = "unsent"
    id: str
    reason: str
    at: float | None = None


@_record
class Accepted(Record):
    TYPE: ClassVar[str] = "accepted"
    id: str
    request_id: int
    at: float | None = None


@_record
class Completed(Record):
    TYPE: ClassVar[str] = "completed"
    id: str
    request_id: int | None
    url: str
    output_type: str | None = None
    at: float | None = None


@_record
class Downloaded(Record):
    TYPE: ClassVar[str] = "downloaded"
    id: str
    file: str
    sha256: str
    bytes: int
    object: str | None = None
    at: float | None = None


@_record
class Stored(Record):
    TYPE: ClassVar[str] = "stored"
    id: str
    object: str
    file: str
    at: float | None = None


@_record
class Missing(Record):
    TYPE: ClassVar[str] = "missing"
    id: str
    reason: str
    at: float | None = None


@_record
class Failed(Record):
    TYPE: ClassVar[str] = "failed"
    id: str
    reason: str
    code: str | None
    billed: bool
    at: float | None = None


@_record
class Ambiguous(Record):
    TYPE: ClassVar[str] = "ambiguous"
    id: str
    reason: str
    at: float | None = None


@_record
class Relinked(Record):
    TYPE: ClassVar[str] = "relinked"
    id: str
    request_id: int
    at: float | None = None


@_record
class Reset(Record):
    TYPE: ClassVar[str] = "reset"
    id: str
    why: str
    at: float | None = None


RECORD_CLASSES: dict[str, type[Record]] = {
    cls.TYPE: cls
    for cls in (
        Batch, Moved, Limits, Job, Retire, Intent, Unsent, Accepted, Completed, Downloaded, Stored, Missing, Failed,
        Ambiguous, Relinked, Reset,
    )
}

# field names per class, in byte order (``at`` last); computed once: the runner writes ~8 a job
_FIELDS: dict[type[Record], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in RECORD_CLASSES.values()  # type: ignore[arg-type]
}


_OMITTED_WHEN_NONE = frozenset({"at", "manifest_key", "object"})
# ... and left out of the batch record alone (a ``limits`` record writes its ``None``)
_BATCH_OMITTED_WHEN_NONE = _OMITTED_WHEN_NONE | {"max_generations", "out"}


def to_wire(record: Record | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of ``record``'s ledger line: ``"t"`` first, then its fields in order.

    A mapping is taken as already in wire form (tests and hand-written ledgers) and copied.
    """
    if not isinstance(record, Record):
        if not isinstance(record, Mapping):
            raise TypeError(f"not a ledger record: {type(record).__name__}")
        return dict(record)
    out: dict[str, Any] = {"t": record.TYPE}
    omitted = _BATCH_OMITTED_WHEN_NONE if isinstance(record, Batch) else _OMITTED_WHEN_NONE
    for name in _FIELDS[type(record)]:
        value = getattr(record, name)
        if value is None and name in omitted:
            continue
        out[name] = value
    return out


def from_wire(obj: Mapping[str, Any]) -> Record:
    """The typed record of one ledger line's JSON object.

    Keys the class does not know (a newer writer's) are ignored; a missing required field or
    an unknown type raises ``ValueError``. Field types are checked by replay, not here.
    """
    cls = RECORD_CLASSES.get(obj.get("t"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown record type {obj.get('t')!r}")
    names = _FIELDS[cls]
    try:
        return cls(**{k: v for k, v in obj.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"a {cls.TYPE!r} record: {exc}") from None


def stamped(record: Record, at: float) -> Record:
    """``record`` with ``at`` set, unless it already has one."""
    return record if record.at is not None else dataclasses.replace(record, at=at)  # type: ignore[type-var]
