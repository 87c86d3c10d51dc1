"""Plain lines: numbers meet their nouns in one place."""

from __future__ import annotations

from lumozbatch.core.events import Event
from lumozbatch.core.wording import count
from lumozbatch.ui.lines import format_event


def test_one_job_is_not_one_jobs() -> None:
    line = format_event(Event("finished", time=1.0, counts={"done": 1, "total": 1}, exit_code=0))
    assert line.endswith("finished: 1 job (1 done), exit 0")


def test_count() -> None:
    assert [count(n, "job") for n in (0, 1, 2)] == ["0 jobs", "1 job", "2 jobs"]
    assert count(1, "child", "children") == "1 child" and count(3, "child", "children") == "3 children"


def test_a_long_rate_limit_wait_reads_in_minutes_and_says_how_to_leave() -> None:
    event = Event("rate_limit", time=2.0, limit=600, remaining=0, reset_in=3540.0, wait=3540.0)
    assert format_event(event) == (
        "[    2.0s] rate limit: 0/600 left, resets in 59m00s, waiting 59m00s "
        "(Ctrl-C stops; lumozbatch resume continues)"
    )
    short = Event("rate_limit", time=2.0, limit=6, remaining=5, reset_in=4.0, wait=0.9)
    assert format_event(short) == "[    2.0s] rate limit: 5/6 left, resets in 4s, waiting 0.9s"
