"""What a run reports as it goes: one vocabulary for the live display, the plain log and ``--json``.

The runner emits ``Event`` values into an ``EventSink``; the UI renders them. Kinds:

=============  ==============================================================================
kind           meaning (fields set besides ``kind`` and ``time``)
=============  ==============================================================================
plan           the batch is planned (``counts``: new/done/in_flight/failed/ambiguous/total,
               ``out_dir``, ``name``)
submit         a ``run`` is about to be sent; its intent is in the ledger (job fields)
accepted       the ``run`` answered with a request_id (job fields, ``request_id``)
progress       ``check`` said processing (job fields, ``request_id``, ``progress`` 0-100 or None)
completed      the output URL is known (job fields, ``request_id``, ``url``)
downloaded     the output is on disk (job fields, ``file``, ``bytes``, ``sha256``)
failed         the job failed (job fields, ``reason``, ``code``)
ambiguous      a ``run`` was sent but its answer was lost (job fields, ``reason``)
retry          a call will be retried (``endpoint``, ``reason``, ``delay``, job fields if any)
rate_limit     the limiter's state changed (``limit``, ``remaining``, ``reset_in``,
               ``wait`` = seconds we now hold back, 0 when sending freely)
outputs        before the run, the files on disk were checked against the ledger (``counts``:
               ``restored`` names shown again from kept copies, ``adopted`` outputs from before
               the store now kept, ``missing`` outputs gone from disk, fetched again)
interrupted    Ctrl-C: no more submissions; answers in flight are being recorded
webhook        a webhook delivery was decided (job fields, ``attempt`` the submission its hook
               path names, ``request_id``, ``status`` the provider's word, ``result`` what
               became of it, ``http_status`` the receiver's answer, ``reason`` for a refusal,
               and the run's totals: ``received`` deliveries, ``polls_saved``); never the hook
               path, its tag or the secret
finished       the run is over (``counts``, ``out_dir``, ``exit_code``)
warning        something worth a line (``reason``)
=============  ==============================================================================

"job fields" are ``job`` (manifest job id), ``identity``, ``key`` and ``model``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

KINDS = frozenset(
    {
        "plan",
        "submit",
        "accepted",
        "progress",
        "completed",
        "downloaded",
        "failed",
        "ambiguous",
        "retry",
        "rate_limit",
        "interrupted",
        "outputs",
        "webhook",
        "finished",
        "warning",
    }
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened during a run; ``time`` is seconds on the run's clock."""

    kind: str
    time: float = 0.0
    job: str | None = None
    identity: str | None = None
    key: str | None = None
    model: str | None = None
    request_id: int | None = None
    progress: float | None = None
    url: str | None = None
    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    reason: str | None = None
    code: str | None = None
    endpoint: str | None = None
    delay: float | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_in: float | None = None
    wait: float | None = None
    counts: dict[str, int] | None = None
    out_dir: str | None = None
    name: str | None = None
    exit_code: int | None = None
    attempt: int | None = None
    status: str | None = None
    result: str | None = None
    http_status: int | None = None
    received: int | None = None
    polls_saved: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``event`` first, then every field that is set."""
        out: dict[str, Any] = {"event": self.kind}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is None or value == {}:
                continue
            # counts and extra are the only containers; copy them so callers may mutate.
            out[name] = dict(value) if isinstance(value, dict) else value
        return out


# Every field but ``kind``, in declaration order (asdict's deep copy was a hot spot at 8 events a job).
_FIELD_NAMES = tuple(f.name for f in fields(Event) if f.name != "kind")

EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """An EventSink that ignores everything (library use, tests)."""
