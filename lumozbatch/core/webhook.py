"""Webhook deliveries, pure: the authenticated path each ``run`` carries, reading a delivery's
body, and what a delivery means for the job the store knows (no I/O, no clock).

A hook path is ``/hook/<job>/<attempt>/<tag>``: ``job`` is the job's identity (or any short
handle of it made of ``[A-Za-z0-9_-]``), ``attempt`` the submission's number in canonical
decimal, ``tag`` the base64url HMAC-SHA256, under the per-batch secret, of both. The secret is
never in the URL and cannot be derived from it; only the canonical spelling of a path verifies
(no percent-escapes, no leading zeros, no padding), so a path altered in any character fails.

Every refusal comes back as a :class:`Verdict` with a 4xx status, never as an exception: the
receiver answers it and nothing changes.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lumozbatch.core.answers import as_progress, as_request_id
from lumozbatch.core.records import Completed, Failed, Record, Relinked
from lumozbatch.errors import UsageError

__all__ = [
    "MAX_BODY_BYTES",
    "MIN_SECRET_BYTES",
    "Action",
    "AnswerFields",
    "Delivery",
    "HookTarget",
    "KnownJob",
    "Verdict",
    "WebhookSettings",
    "decide",
    "hook_path",
    "hook_url",
    "parse_delivery",
    "read_answer_fields",
    "records_for",
    "verify_hook_path",
]

#: SPEC 8: a delivery body is at most 64 KiB.
MAX_BODY_BYTES = 64 * 1024
#: ``secrets.token_bytes(32)``: anything shorter is a mistake, not a secret.
MIN_SECRET_BYTES = 32
MAX_ATTEMPT = 1_000_000

_JOB = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ATTEMPT = re.compile(r"[1-9][0-9]{0,6}")
_TAG = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, base64url, unpadded
_DOMAIN = b"lumozbatch-webhook-v1"


class Action(enum.StrEnum):
    """What a delivery means. The first five are answered 2xx, the rest 4xx, but
    ``NOT_RECORDED`` (503: recording it failed, the sender should try again)."""

    COMPLETE = "complete"  # SUBMITTED job: record its completion (output URL)
    FAIL = "fail"  # SUBMITTED job: record its failure (billed)
    RELINK = "relink"  # run sent, answer lost (AMBIGUOUS/SUBMITTING): record the request_id
    PROGRESS = "progress"  # not finished yet: nothing to record
    DUPLICATE = "duplicate"  # already known: nothing changes
    MALFORMED = "malformed"  # the path or the body is not a delivery of ours
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    METHOD = "method"
    UNKNOWN_JOB = "unknown_job"
    STALE_ATTEMPT = "stale_attempt"  # for an attempt other than the job's current one
    CONTRADICTS = "contradicts"  # another request_id, or an outcome opposite to the known one
    NOT_SENT = "not_sent"  # the job was never submitted (or was refused): nothing can be due
    NOT_RECORDED = "not_recorded"  # the receiver's record callback failed


_STATUS = {
    Action.COMPLETE: 200, Action.FAIL: 200, Action.RELINK: 200, Action.PROGRESS: 202,
    Action.DUPLICATE: 200, Action.MALFORMED: 400, Action.TOO_LARGE: 413,
    Action.UNSUPPORTED_TYPE: 415, Action.METHOD: 405, Action.UNKNOWN_JOB: 404,
    Action.STALE_ATTEMPT: 409, Action.CONTRADICTS: 409, Action.NOT_SENT: 409,
    Action.NOT_RECORDED: 503,
}
_CHANGES = frozenset({Action.COMPLETE, Action.FAIL, Action.RELINK})


@dataclass(frozen=True, slots=True)
class Verdict:
    """An answer to one delivery: ``action``, why (``reason``, for the log and the answer)."""

    action: Action
    reason: str = ""

    @property
    def status(self) -> int:
        return _STATUS[self.action]

    @property
    def accepted(self) -> bool:
        """Answered 2xx: the sender may stop retrying."""
        return self.status < 300

    @property
    def changes_state(self) -> bool:
        """The runner must record something durably before the 2xx goes out."""
        return self.action in _CHANGES


@dataclass(frozen=True, slots=True)
class HookTarget:
    """Whom an authenticated hook path names."""

    job: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A readable delivery body, for ``target`` (set by the receiver once the path verified).

    ``status`` is the provider's word (``completed`` always has ``output``, ``failed`` always
    has ``error``); any other status means "not done yet", as for ``/check``."""

    request_id: int
    status: str
    output: str | None = None
    output_type: str | None = None
    error: str | None = None
    progress: float | None = None
    target: HookTarget | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True, slots=True)
class KnownJob:
    """What the store knows of the job a delivery names. ``state`` is a ``JobState`` value
    (``"submitted"``...); ``attempt`` None skips the attempt check."""

    state: str
    request_id: int | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``--webhook-url`` (the public address the provider posts to) and ``--webhook-listen``
    (where the receiver listens: ``HOST:PORT``; None: 127.0.0.1 and the URL's port)."""

    url: str
    listen: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise UsageError(f"--webhook-url {self.url!r} is not an http(s) URL without a query",
                             details=["the provider posts to it: e.g. https://hooks.example.com/lumozbatch"])
        try:
            parts.port
        except ValueError:
            raise UsageError(f"--webhook-url {self.url!r} has an invalid port") from None

    @property
    def port(self) -> int:
        """The URL's port (its scheme's default when it names none): where the receiver listens
        unless ``--webhook-listen`` says otherwise."""
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


# -- paths ----------------------------------------------------------------------------------


def _tag(secret: bytes, job: str, attempt: int) -> str:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret has at least {MIN_SECRET_BYTES} bytes")
    message = b"\n".join((_DOMAIN, job.encode("ascii"), str(attempt).encode("ascii")))
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def hook_path(secret: bytes, job: str, attempt: int) -> str:
    """``/hook/<job>/<attempt>/<tag>`` for this job's ``attempt`` (1, 2, ...)."""
    if not _JOB.fullmatch(job):
        raise ValueError(f"a job handle is 1-128 of [A-Za-z0-9_-], not {job!r}")
    if not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be in 1..{MAX_ATTEMPT}")
    return f"/hook/{job}/{attempt}/{_tag(secret, job, attempt)}"


def hook_url(base_url: str, secret: bytes, job: str, attempt: int) -> str:
    """The ``webhook=`` value of a ``run``: the public ``--webhook-url`` plus the hook path."""
    return base_url.rstrip("/") + hook_path(secret, job, attempt)


def verify_hook_path(secret: bytes, raw_path: str, prefix: str = "") -> HookTarget | Verdict:
    """The target of a hook path as it came on the wire (undecoded, query excluded), or a 404
    ``UNKNOWN_JOB`` verdict. ``prefix`` is the ``--webhook-url``'s own path; a proxy that strips
    it is tolerated."""
    refused = Verdict(Action.UNKNOWN_JOB, "no such hook")
    prefix = prefix.rstrip("/")
    if prefix and raw_path.startswith(prefix + "/hook/"):
        raw_path = raw_path[len(prefix):]
    parts = raw_path.split("/")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "hook":
        return refused
    _, _, job, attempt, tag = parts
    if not (_JOB.fullmatch(job) and _ATTEMPT.fullmatch(attempt) and _TAG.fullmatch(tag)):
        return refused
    expected = _tag(secret, job, int(attempt))
    if not hmac.compare_digest(expected.encode("ascii"), tag.encode("ascii")):
        return refused
    return HookTarget(job, int(attempt))


# -- bodies ---------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class AnswerFields:
    """The fields of a ``/check``-shaped answer, each None (or ``""`` for status) if absent or
    of the wrong type."""

    request_id: int | None
    status: str
    progress: float | None
    output: str | None
    output_type: str | None
    error: str | None


def read_answer_fields(body: Mapping[str, Any]) -> AnswerFields:
    """A ``/check``-shaped answer's fields, read as ``shell.api.LumozClient.check`` reads them:
    ``request_id`` (int or None), ``status`` (``failed`` when ``success`` is false and no status
    is given, else ``""`` if absent), ``progress``, ``output``, ``output_type``, ``error``.
    The fields are under ``data``, or at the top level when there is no ``data`` object."""
    data = body.get("data")
    fields: Mapping[str, Any] = data if isinstance(data, Mapping) else body
    status = fields.get("status")
    status = status if isinstance(status, str) else ""
    if not status and body.get("success") in (False, "false", "0"):
        status = "failed"
    return AnswerFields(
        request_id=as_request_id(fields.get("request_id")),
        status=status,
        progress=as_progress(fields.get("progress")),
        output=_text(fields.get("output")),
        output_type=_text(fields.get("output_type")),
        error=_text(fields.get("error")),
    )


def _decode(body: bytes, content_type: str | None) -> Mapping[str, Any] | Verdict:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not kind:  # no Content-Type: a JSON object is unmistakable, else read it as a form
        kind = "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict(Action.MALFORMED, "the body is not UTF-8")
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return Verdict(Action.MALFORMED, "the body is not JSON")
        return data if isinstance(data, dict) else Verdict(Action.MALFORMED, "not a JSON object")
    if kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=64))
        except ValueError:
            return Verdict(Action.MALFORMED, "the body is not form-encoded")
    return Verdict(Action.UNSUPPORTED_TYPE, f"Content-Type {kind!r} is not JSON or a form")


def parse_delivery(body: bytes, content_type: str | None) -> Delivery | Verdict:
    """A delivery body (JSON or form-encoded, at most ``MAX_BODY_BYTES``, shaped like a
    ``/check`` answer) as a :class:`Delivery`, or the 4xx verdict that refuses it."""
    if len(body) > MAX_BODY_BYTES:
        return Verdict(Action.TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    decoded = _decode(body, content_type)
    if isinstance(decoded, Verdict):
        return decoded
    fields = read_answer_fields(decoded)
    request_id, status, output = fields.request_id, fields.status, fields.output
    if request_id is None or request_id <= 0:
        return Verdict(Action.MALFORMED, "no request_id")
    if not status:
        return Verdict(Action.MALFORMED, "no status")
    if status == "completed" and not (output and output.startswith(("https://", "http://"))):
        return Verdict(Action.MALFORMED, "completed without an output URL")
    error = fields.error
    if status == "failed" and not error:
        error = "the provider reported the generation as failed"
    return Delivery(request_id=request_id, status=status,
                    output=output if status == "completed" else None,
                    output_type=fields.output_type, error=error if status == "failed" else None,
                    progress=fields.progress)


# -- what a delivery means ------------------------------------------------------------------

_SENT_NO_ANSWER = frozenset({"submitting", "ambiguous"})
# a MISSING job was done once: its output is lost from disk, not its completion
_FINISHED = {"completed": "completed", "done": "completed", "missing": "completed", "failed": "failed"}


def decide(known: KnownJob | None, delivery: Delivery) -> Verdict:
    """What to do with an authenticated, readable delivery for a job the store knows (None:
    it knows no such job). Pure; the caller records COMPLETE/FAIL/RELINK durably, then answers.
    """
    if known is None:
        return Verdict(Action.UNKNOWN_JOB, "no such job in this batch")
    target = delivery.target
    if known.attempt is not None and target is not None and target.attempt != known.attempt:
        return Verdict(Action.STALE_ATTEMPT,
                       f"attempt {target.attempt} is not the job's current one ({known.attempt})")
    if known.request_id is not None and delivery.request_id != known.request_id:
        return Verdict(Action.CONTRADICTS, "this job has another request_id")
    if known.state in _SENT_NO_ANSWER:
        return Verdict(Action.RELINK, "the run's answer was lost; the webhook names it")
    if known.state == "submitted":
        if delivery.completed:
            return Verdict(Action.COMPLETE)
        if delivery.failed:
            return Verdict(Action.FAIL)
        return Verdict(Action.PROGRESS)
    finished = _FINISHED.get(known.state)
    if finished is None or known.request_id is None:  # pending, or refused before creation
        return Verdict(Action.NOT_SENT, f"the job is {known.state}: nothing was submitted")
    if delivery.status in ("completed", "failed") and delivery.status != finished:
        return Verdict(Action.CONTRADICTS, f"the job already {finished}")
    return Verdict(Action.DUPLICATE, "already recorded")


def records_for(identity: str, verdict: Verdict, delivery: Delivery) -> list[Record]:
    """The ledger records a decided delivery writes (none unless ``verdict.changes_state``):
    a relink first, then the outcome the delivery reports, as a ``/check`` would record it."""
    if not verdict.changes_state:
        return []
    records: list[Record] = []
    if verdict.action is Action.RELINK:
        records.append(Relinked(id=identity, request_id=delivery.request_id))
    if delivery.completed and delivery.output is not None:
        records.append(Completed(id=identity, request_id=delivery.request_id, url=delivery.output,
                                 output_type=delivery.output_type))
    elif delivery.failed:
        records.append(Failed(id=identity, reason=delivery.error or "failed", code="failed",
                              billed=True))
    return records
