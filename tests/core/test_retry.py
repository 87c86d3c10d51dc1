"""Retry decisions: a `run` is re-sent only when it certainly created nothing."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from lumozbatch.core.retry import (
    Decision,
    Failure,
    decide_fetch,
    decide_run,
    full_jitter,
    parse_http_date,
    parse_retry_after,
)

T0 = 1_700_000_000


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.5, 0.25), (1, 0.5, 0.5), (3, 1.0, 4.0), (6, 1.0, 30.0), (500, 0.5, 15.0), (4, 0.0, 0.0)],
)
def test_full_jitter(attempt: int, rand: float, expected: float) -> None:
    assert full_jitter(attempt, rand=rand) == expected


def test_full_jitter_custom_base_and_cap() -> None:
    assert full_jitter(2, base=1.0, cap=3.0, rand=0.9) == pytest.approx(2.7)
    with pytest.raises(ValueError):
        full_jitter(-1, rand=0.1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        (formatdate(T0 + 20, usegmt=True), 20.0),
        (formatdate(T0 - 20, usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, date_now=T0) == expected


def test_parse_retry_after_date_needs_a_reference() -> None:
    assert parse_retry_after(formatdate(T0, usegmt=True), date_now=None) is None
    assert parse_retry_after("7", date_now=None) == 7.0


def test_parse_http_date() -> None:
    assert parse_http_date(formatdate(T0, usegmt=True)) == T0
    assert parse_http_date("Tue, 14 Nov 2023 22:13:20 -0000") == T0
    assert parse_http_date("garbage") is None
    assert parse_http_date(None) is None


# -- run ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code", "action"),
    [
        (Failure.CONNECT, None, None, "retry"),
        (Failure.HTTP, 429, "rate_limit_exceeded", "retry"),
        (Failure.HTTP, 500, "internal_server_error", "retry"),
        (Failure.HTTP, 503, None, "retry"),
        (Failure.HTTP, 408, None, "retry"),
        (Failure.SENT_NO_ANSWER, None, None, "ambiguous"),
        (Failure.HTTP, 502, None, "ambiguous"),
        (Failure.HTTP, 504, None, "ambiguous"),
        (Failure.HTTP, 401, "authentication_failed", "fatal_auth"),
        (Failure.HTTP, 404, "model_not_found", "fail_model"),
        (Failure.HTTP, 404, None, "fail_model"),
        (Failure.HTTP, 403, "permission_denied", "fail_job"),
        (Failure.HTTP, 422, "validation_error", "fail_job"),
        (Failure.HTTP, 400, None, "fail_job"),
    ],
)
def test_decide_run(failure: Failure, status: int | None, code: str | None, action: str) -> None:
    decision = decide_run(failure, status, code, 1, rand=0.5)
    assert decision.action == action
    assert decision.reason
    if action == "retry":
        assert decision.delay == full_jitter(1, rand=0.5)
    else:
        assert decision.delay == 0.0


def test_decide_run_reason_names_status_and_code() -> None:
    assert decide_run(Failure.HTTP, 422, "validation_error", 1, rand=0).reason == "HTTP 422 validation_error"


def test_decide_run_gives_up_after_max_attempts_without_failing_the_job() -> None:
    assert decide_run(Failure.CONNECT, None, None, 7, rand=0.1).action == "retry"
    gave_up = decide_run(Failure.CONNECT, None, None, 8, rand=0.1)
    assert gave_up == Decision("give_up", 0.0, "could not connect; gave up after 8 attempts")
    assert decide_run(Failure.HTTP, 503, None, 3, rand=0.1, max_attempts=3).action == "give_up"
    # a lost answer is never "given up" into a retry: it stays ambiguous
    assert decide_run(Failure.SENT_NO_ANSWER, None, None, 99, rand=0.1).action == "ambiguous"


def test_decide_run_needs_a_status_for_http() -> None:
    with pytest.raises(ValueError):
        decide_run(Failure.HTTP, None, None, 1, rand=0.1)


# -- check and downloads --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "endpoint", "action"),
    [
        (Failure.CONNECT, None, "check", "retry"),
        (Failure.SENT_NO_ANSWER, None, "check", "retry"),  # check is idempotent
        (Failure.SENT_NO_ANSWER, None, "download", "retry"),
        (Failure.CONNECT, None, "download", "refresh"),  # the URL's host is gone: ask /check
        (Failure.HTTP, 500, "check", "retry"),
        (Failure.HTTP, 502, "download", "retry"),
        (Failure.HTTP, 429, "check", "retry"),
        (Failure.HTTP, 401, "check", "fatal_auth"),
        (Failure.HTTP, 404, "download", "refresh"),
        (Failure.HTTP, 410, "download", "refresh"),
        (Failure.HTTP, 403, "download", "refresh"),
        (Failure.HTTP, 401, "download", "refresh"),  # downloads never carry the key
        (Failure.HTTP, 404, "check", "fail_job"),
        (Failure.HTTP, 400, "download", "fail_job"),
    ],
)
def test_decide_fetch(failure: Failure, status: int | None, endpoint: str, action: str) -> None:
    assert decide_fetch(failure, status, 2, rand=0.5, endpoint=endpoint).action == action  # type: ignore[arg-type]


def test_decide_fetch_retries_longer_then_gives_up() -> None:
    assert decide_fetch(Failure.CONNECT, None, 9, rand=1.0).action == "retry"
    assert decide_fetch(Failure.CONNECT, None, 9, rand=1.0).delay == 30.0
    assert decide_fetch(Failure.CONNECT, None, 10, rand=1.0).action == "give_up"
