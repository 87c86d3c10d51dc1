"""What the sandbox saw, for tests and benchmarks (also served at ``GET /_sandbox/stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.sandbox.params import submission_key

__all__ = ["SandboxStats"]


@dataclass
class SandboxStats:
    """Counters since start (or the last ``POST /_sandbox/reset``).

    ``submissions`` counts jobs CREATED per distinct parameter set (``submission_key``: model_id
    + params, webhook excluded) — a value above 1 means that generation was paid more than once.
    ``calls`` counts requests per endpoint (``run``, ``check``, ``storage``, ``other``), whatever
    their answer. ``drops`` counts connections closed without an answer, per endpoint
    (``run-reset``: the ``reset_after_create`` knob).

    Webhooks, per delivery: ``webhooks_sent`` posts answered 2xx, ``webhooks_failed`` posts
    answered otherwise or not at all, ``webhook_statuses`` every post's status (``"error"``: no
    answer); per job: ``webhooks_dropped`` lost by the knob, ``webhooks_duplicated`` posted
    twice, ``webhooks_skipped`` not deliverable (an in-process sandbox without its background).
    """

    submissions: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    server_errors: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    jobs_created: int = 0
    jobs_failed: int = 0
    outputs_issued: int = 0
    concurrent: int = 0
    peak_concurrent: int = 0
    storage_authorization: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    webhooks_skipped: int = 0
    webhooks_dropped: int = 0
    webhooks_duplicated: int = 0
    webhook_statuses: Counter[str] = field(default_factory=Counter)

    @property
    def storage_saw_authorization(self) -> bool:
        return self.storage_authorization > 0

    def submissions_for(self, model_id: str, params: dict[str, Any]) -> int:
        """How many jobs were created for exactly these parameters."""
        return self.submissions.get(submission_key(model_id, params), 0)

    def duplicates(self) -> dict[str, int]:
        """Parameter sets submitted more than once (key -> count)."""
        return {k: n for k, n in self.submissions.items() if n > 1}

    def enter(self) -> None:
        self.concurrent += 1
        if self.concurrent > self.peak_concurrent:
            self.peak_concurrent = self.concurrent

    def leave(self) -> None:
        self.concurrent -= 1

    def to_json(self) -> dict[str, Any]:
        return {
            "submissions": dict(self.submissions),
            "distinct_submissions": len(self.submissions),
            "total_submissions": sum(self.submissions.values()),
            "duplicate_submissions": self.duplicates(),
            "calls": dict(self.calls),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "drops": dict(self.drops),
            "truncated": self.truncated,
            "jobs_created": self.jobs_created,
            "jobs_failed": self.jobs_failed,
            "outputs_issued": self.outputs_issued,
            "concurrent": self.concurrent,
            "peak_concurrent": self.peak_concurrent,
            "storage_authorization": self.storage_authorization,
            "storage_saw_authorization": self.storage_saw_authorization,
            "webhooks_sent": self.webhooks_sent,
            "webhooks_failed": self.webhooks_failed,
            "webhooks_skipped": self.webhooks_skipped,
            "webhooks_dropped": self.webhooks_dropped,
            "webhooks_duplicated": self.webhooks_duplicated,
            "webhook_statuses": dict(sorted(self.webhook_statuses.items())),
        }
