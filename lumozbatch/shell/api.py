"""The LumozAI client: ``/api/v4/run`` and ``/api/v4/check`` over an injected httpx client.

Every call goes through the shared rate limiter (one slot per request, released with the
answer's headers), is form-encoded with ``Accept: application/json`` as the provider's curl
examples are, and carries the Bearer key to the API origin only (downloads use
``lumozbatch.shell.download``, which never sends it). Failures come back as
``ApiCallError`` classified by ``core.retry.Failure`` so the caller can tell "certainly
nothing was created" from "sent, answer lost".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import trio

from lumozbatch.core.answers import as_progress, as_request_id
from lumozbatch.core.retry import Failure
from lumozbatch.errors import ConfigError
from lumozbatch.shell.ratelimit import SharedLimiter, Slot

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE",
    "DEFAULT_TIMEOUT",
    "ApiCallError",
    "CheckAnswer",
    "LumozClient",
    "RunAnswer",
    "classify_transport_error",
    "form_fields",
    "normalize_base_url",
]

DEFAULT_BASE_URL = "https://lumozai.com"
RUN_PATH = "/api/v4/run"
CHECK_PATH = "/api/v4/check"

#: Every call is bounded: connecting, sending, and each read of the answer...
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
#: ...and as a whole (an answer trickling in byte by byte never times out a single read).
DEFAULT_DEADLINE = 120.0


@dataclass(frozen=True, slots=True)
class RunAnswer:
    """``run`` accepted the job; ``output`` is set when it finished synchronously.

    ``request_id`` may be None only together with an ``output``: the model page's own example
    of a synchronous answer carries the output alone.
    """

    request_id: int | None
    output: str | None = None
    output_type: str | None = None


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """What ``check`` said. ``status`` is the provider's word; unknown ones mean "not done"."""

    request_id: int
    status: str
    progress: float | None = None
    output: str | None = None
    output_type: str | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed" and bool(self.output)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(eq=False)
class ApiCallError(Exception):
    """A call did not produce a usable answer.

    ``failure`` says whether anything reached the server: ``CONNECT`` (certainly not),
    ``SENT_NO_ANSWER`` (maybe: the request left, no answer came back, or the answer was not
    readable, or a 2xx `check` said nothing about the job) or ``HTTP`` (the server answered
    ``status`` with an error body).
    """

    failure: Failure
    status: int | None = None
    code: str | None = None
    message: str = ""
    details: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.describe())

    def describe(self) -> str:
        """One line in the API's own words, with the details flattened."""
        head = f"HTTP {self.status}" if self.status is not None else self.failure.name.lower()
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.message}" if self.message else head
        flat = flatten_details(self.details)
        return f"{text} ({flat})" if flat else text


def flatten_details(details: Any) -> str:
    """``{"guidance": ["too big"]}`` -> ``guidance: too big``; anything else as text."""
    if not details:
        return ""
    if isinstance(details, Mapping):
        parts = []
        for key, value in details.items():
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            parts.append(f"{key}: {value}")
        return ", ".join(parts)
    if isinstance(details, list):
        return "; ".join(str(v) for v in details)
    return str(details)


def normalize_base_url(url: str) -> str:
    """The API root without a trailing slash; refuses anything but http(s) with a host."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"invalid base URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"invalid base URL {url!r}: expected http(s)://host[:port], e.g. {DEFAULT_BASE_URL}"
        )
    return str(parsed).rstrip("/")


def _form_value(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, (Mapping, list, tuple)):
        # Structure has no form encoding of its own: JSON text, never Python's repr.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and not any(
        v is None or isinstance(v, (Mapping, list, tuple)) for v in value
    )


def form_fields(model: str, params: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """The form body of a ``run``: ``model_id`` first, then the parameters as strings.

    ``None`` values are left out (the provider's default applies); a list of scalars becomes
    repeated fields, as a PHP/curl client would send it; a mapping, or a list holding lists or
    mappings, is sent as one field of compact JSON text.
    """
    data: dict[str, str | list[str]] = {"model_id": model}
    for name, value in params.items():
        if value is None or name == "model_id":
            continue
        if _is_flat_list(value):
            data[name] = [_form_value(v) for v in value]
        else:
            data[name] = _form_value(value)
    return data


def classify_transport_error(exc: httpx.TransportError) -> Failure:
    """Whether a network error certainly stopped the request before it reached the server."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure.CONNECT
    # ReadTimeout, WriteError/WriteTimeout, ReadError, RemoteProtocolError, ...: some or all
    # of the request may have been received and acted upon.
    return Failure.SENT_NO_ANSWER


def _answer_body(response: httpx.Response, endpoint: str) -> Mapping[str, Any]:
    """The JSON object of a 2xx answer (201/202 also say "created"). A 2xx whose body is
    unreadable is a lost answer: a ``run`` may have created (and billed) a job we cannot name.
    Anything else is the API's error."""
    body = _json_body(response)
    ok = 200 <= response.status_code < 300
    if ok and isinstance(body, Mapping):
        return body
    if ok:
        raise ApiCallError(
            Failure.SENT_NO_ANSWER,
            status=response.status_code,
            code="unreadable_answer",
            message=f"{endpoint} answered {response.status_code} with a body that is not JSON",
        )
    raise _error_from(response, body)


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def _error_from(response: httpx.Response, body: Any) -> ApiCallError:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = error.get("code")
        message = str(error.get("message") or "")
        details = error.get("details")
    else:
        code = None
        message = str(error) if isinstance(error, str) else ""
        if not message and isinstance(body, Mapping):
            message = str(body.get("message") or "")
        if not message:
            message = response.reason_phrase or "error"
        details = None
    return ApiCallError(
        Failure.HTTP,
        status=response.status_code,
        code=str(code) if code else None,
        message=message,
        details=details,
        headers=dict(response.headers),
    )


class LumozClient:
    """``run`` and ``check`` against one API root, sharing one ``SharedLimiter``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        limiter: SharedLimiter,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if not api_key:
            raise ConfigError("no API key: set LUMOZ_API_KEY")
        self._http = http
        self.base_url = normalize_base_url(base_url)
        self._key = api_key
        self.limiter = limiter
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._deadline = deadline

    def slot(self) -> AbstractAsyncContextManager[Slot]:
        """Wait for the rate limiter: ``async with client.slot() as s: await client.run(..., slot=s)``
        (the runner writes its intent between the two, once the request may go)."""
        return self.limiter.slot()

    async def run(
        self, model: str, params: Mapping[str, Any], *, slot: Slot | None = None
    ) -> RunAnswer:
        """Submit one generation. Raises ``ApiCallError``; never retries by itself."""
        response = await self._post(RUN_PATH, form_fields(model, params), slot)
        body = _answer_body(response, "run")
        data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
        request_id = as_request_id(data.get("request_id"))
        output = data.get("output")
        has_output = isinstance(output, str) and bool(output)
        if body.get("success") is False or (request_id is None and not has_output):
            if body.get("success") is False and "error" in body:
                raise _error_from(response, body)
            raise ApiCallError(
                Failure.SENT_NO_ANSWER,
                status=200,
                code="unreadable_answer",
                message="run answered without a request_id",
            )
        return RunAnswer(
            request_id=request_id,
            output=output if has_output else None,
            output_type=data.get("output_type") if isinstance(data.get("output_type"), str) else None,
        )

    async def check(self, request_id: int, *, slot: Slot | None = None) -> CheckAnswer:
        """Ask where a request stands. ``failed`` comes back as an answer, not an error."""
        response = await self._post(CHECK_PATH, {"request_id": str(request_id)}, slot)
        body = _answer_body(response, "check")
        data = body.get("data")
        if not isinstance(data, Mapping):
            # A 2xx without the job's status ("success": false and an error, say) tells
            # nothing about an accepted, paid job: a transient answer, so the check is retried
            # (bounded; then the job is left in flight), never failed as billed.
            raise replace(_error_from(response, body), failure=Failure.SENT_NO_ANSWER)
        status = str(data.get("status") or ("failed" if body.get("success") is False else ""))
        output = data.get("output")
        error = data.get("error")
        if status == "failed" and not error:
            error = "the provider reported the generation as failed"
        return CheckAnswer(
            request_id=as_request_id(data.get("request_id")) or request_id,
            status=status or "unknown",
            progress=as_progress(data.get("progress")),
            output=output if isinstance(output, str) and output else None,
            output_type=data.get("output_type") if isinstance(data.get("output_type"), str) else None,
            error=str(error) if error else None,
        )

    async def _post(
        self, path: str, data: Mapping[str, Any], slot: Slot | None
    ) -> httpx.Response:
        if slot is None:
            async with self.limiter.slot() as own:
                return await self._send(path, data, own)
        return await self._send(path, data, slot)

    async def _send(self, path: str, data: Mapping[str, Any], slot: Slot) -> httpx.Response:
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self._key}"}
        try:
            with trio.fail_after(self._deadline):
                response = await self._http.post(
                    self.base_url + path,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,  # a redirect must not carry the key anywhere else
                )
        except trio.TooSlowError:
            slot.no_response()
            raise ApiCallError(
                Failure.SENT_NO_ANSWER, message=f"no complete answer within {self._deadline:.0f}s"
            ) from None
        except httpx.TransportError as exc:
            slot.no_response()
            raise ApiCallError(
                classify_transport_error(exc),
                message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            ) from exc
        except httpx.DecodingError as exc:
            # The server answered, but its body does not decode: as good as a lost answer.
            slot.no_response()
            raise ApiCallError(
                Failure.SENT_NO_ANSWER, code="unreadable_answer", message=f"DecodingError: {exc}"
            ) from exc
        slot.response(response.status_code, response.headers)
        return response
