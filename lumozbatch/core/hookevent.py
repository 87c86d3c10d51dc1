"""The ``webhook`` event: one delivery the runner decided on (SPEC 8). Pure.

Its fields besides the job fields: ``attempt`` (the submission the hook path names),
``request_id``, ``status`` (the provider's word in the delivery), ``result`` (the
``core.webhook.Action`` value), ``http_status`` (what the receiver answered), for a
refusal ``reason``, and the run's totals so far: ``received`` deliveries decided and
``polls_saved`` (results a webhook brought, that no ``/check`` had to fetch). Never the hook
path, its tag or the secret.

It is a subclass of :class:`lumozbatch.core.events.Event` because ``events.KINDS`` (not
owned by the webhook slice) does not list ``webhook`` yet; once it does, these fields belong
on ``Event`` itself and this module goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lumozbatch.core.events import Event

__all__ = ["WEBHOOK", "WebhookEvent"]

WEBHOOK = "webhook"
_ORDER = ("time", "job", "identity", "key", "model", "attempt", "request_id", "status", "result",
          "http_status", "reason", "received", "polls_saved")


@dataclass(frozen=True, slots=True)
class WebhookEvent(Event):
    """A delivery and what became of it."""

    kind: str = WEBHOOK
    attempt: int | None = None
    status: str | None = None
    result: str | None = None
    http_status: int | None = None
    received: int | None = None
    polls_saved: int | None = None

    def __post_init__(self) -> None:
        if self.kind != WEBHOOK:
            raise ValueError(f"a WebhookEvent is of kind {WEBHOOK!r}, not {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"event": "webhook", ...}``, every field that is set."""
        out: dict[str, Any] = {"event": WEBHOOK}
        for name in _ORDER:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out
