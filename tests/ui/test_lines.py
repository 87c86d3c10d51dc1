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
