"""RunView (what the display counts) and the ETA under a rate limit: pure, exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumozbatch.core.events import Event
from lumozbatch.ui.eta import calls_needed, estimate_eta
from lumozbatch.ui.ratelimit_file import RATELIMIT_FILE, RateLimitRecord, eta_for, load_snapshot, save_snapshot
from lumozbatch.ui.view import RunView, plan_extra


def ident(n: int) -> str:
    return f"{n:064x}"


def test_counts_follow_each_identity_through_its_phases() -> None:
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 5, "new": 3, "done": 1, "in_flight": 1}))
    assert view.counts() == {"done": 1, "failed": 0, "ambiguous": 0, "submitting": 0, "running": 1,
                             "downloading": 0, "pending": 3, "total": 5}
    view.apply(Event("submit", 1.0, job="a", identity=ident(1)))
    view.apply(Event("accepted", 2.0, job="a", identity=ident(1), request_id=5))
    # the job that was in flight before this run reports in: it replaces the plan's count
    view.apply(Event("completed", 2.5, job="a", identity=ident(9), request_id=4, url="u"))
    c = view.counts()
    assert (c["running"], c["downloading"], c["pending"]) == (1, 1, 2)
    view.apply(Event("downloaded", 3.0, job="a", identity=ident(9), file="f"))
    view.apply(Event("ambiguous", 4.0, job="a", identity=ident(1), reason="lost"))
    c = view.counts()
    assert (c["done"], c["ambiguous"], c["running"], c["pending"]) == (2, 1, 0, 2)
    assert [e.kind for e in view.failures] == ["ambiguous"]
    assert view.groups["a"].count("done") == 1 and view.groups["a"].count("ambiguous") == 1


def test_done_jobs_are_counted_not_remembered() -> None:
    # the live display of a 100,000-job run holds the jobs in flight, not every identity
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 1000, "new": 1000}))
    for i in range(1000):
        view.apply(Event("submit", float(i), job="a", identity=ident(i)))
        view.apply(Event("accepted", float(i), job="a", identity=ident(i), request_id=i))
        if i < 998:
            view.apply(Event("downloaded", float(i), job="a", identity=ident(i), file="f"))
    c = view.counts()
    assert (c["done"], c["running"], c["pending"]) == (998, 2, 0)
    assert set(view.phase) == {ident(998), ident(999)} and set(view.group_of) == set(view.phase)
    assert [i for i, *_ in view.in_flight()] == [ident(998), ident(999)]
    assert view.groups["a"].count("done") == 998


def test_rate_limit_countdown_is_measured_from_the_event() -> None:
    view = RunView()
    view.apply(Event("rate_limit", 10.0, limit=60, remaining=0, reset_in=5.0, wait=5.0))
    assert view.rate.waiting(10.0) == 5.0
    assert view.rate.waiting(12.5) == 2.5
    assert view.rate.waiting(20.0) == 0.0
    assert view.rate.resets_in(11.0) == 4.0


def test_eta_from_observed_finishes() -> None:
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 10, "new": 10}))
    assert view.eta(1.0) is None  # nothing finished yet: no rate to go by
    for i in range(4):
        view.apply(Event("submit", float(i), job="a", identity=ident(i)))
        view.apply(Event("downloaded", 2.0 + i, job="a", identity=ident(i), file="f"))
    # 4 finishes one second apart -> 1 job/s; 6 left -> 6 s after the last finish (t=5)
    assert view.rate_per_second() == 1.0
    assert view.eta(5.0) == 6.0
    assert view.eta(7.0) == 4.0
    view.apply(Event("rate_limit", 7.0, limit=60, remaining=0, reset_in=30.0, wait=30.0))
    assert view.eta(7.0) == 30.0  # not before the limiter lets the next request go


def test_calls_needed() -> None:
    assert calls_needed(10) == 30
    assert calls_needed(10, 4, polls_per_job=1.5) == 31


@pytest.mark.parametrize(
    ("calls", "limit", "window", "remaining", "reset_in", "expected"),
    [
        (0, 60, 5.0, None, None, 0.0),
        (60, 60, 5.0, None, None, 5.0),  # one fresh window, paced over it
        (30, 60, 5.0, None, None, 2.5),
        (120, 60, 5.0, None, None, 10.0),
        (10, 60, 5.0, 10, 2.0, 2.0),  # the rest of the current window
        (130, 60, 5.0, 10, 2.0, 12.0),  # 10 now-ish, then 2 full windows
        (61, 60, 5.0, 0, 3.0, 3.0 + 5.0 + 5.0 / 60),
        (10, 60, None, None, None, 600.0),  # the provider's "per hour" when unknown
    ],
)
def test_estimate_eta(calls, limit, window, remaining, reset_in, expected) -> None:
    assert estimate_eta(calls, limit, window, remaining=remaining, reset_in=reset_in) == pytest.approx(expected)


def test_estimate_eta_without_a_limit_is_unknown() -> None:
    assert estimate_eta(10, None) is None
    assert estimate_eta(10, 0, 5.0) is None


def test_ratelimit_snapshot_round_trip_and_rollover(tmp_path: Path) -> None:
    assert load_snapshot(tmp_path) is None
    assert eta_for(None, 10, now=0.0) is None
    record = RateLimitRecord(limit=60, remaining=0, reset_at=1000.0, observed_at=998.0, window=5.0)
    save_snapshot(tmp_path, record)
    assert (tmp_path / RATELIMIT_FILE).is_file()
    assert load_snapshot(tmp_path) == record
    assert eta_for(record, 60, now=998.0) == pytest.approx(2.0 + 5.0)  # wait the reset, then a window
    assert eta_for(record, 60, now=2000.0) == pytest.approx(5.0)  # long reset: a fresh window
    (tmp_path / RATELIMIT_FILE).write_text("{not json")
    assert load_snapshot(tmp_path) is None


def test_plan_extra_gives_the_display_each_jobs_total(batch) -> None:
    b = batch()
    a = b.job("portraits", {"subject": "a"})
    b.job("portraits", {"subject": "b"})
    c = b.job("towers", {"time": "dawn"})
    d = b.job("towers", {"time": "dusk"})
    b.done(a, "a.png")
    b.failed(c, "no")
    b.ambiguous(d)
    extra = plan_extra(b.state())
    assert extra == {"jobs": {"portraits": {"total": 2, "done": 1}, "towers": {"total": 2, "failed": 1, "ambiguous": 1}}}
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 4, "done": 1, "failed": 1, "ambiguous": 1, "new": 1}, extra=extra))
    assert view.groups["towers"].total == 2 and view.groups["towers"].finished == 2
    view.apply(Event("downloaded", 1.0, job="portraits", identity=b.ids[1], file="b.png"))
    assert view.groups["portraits"].count("done") == 2


def test_interrupted_and_retry_events() -> None:
    view = RunView()
    view.apply(Event("retry", 1.0, endpoint="check", reason="500", delay=0.5))
    view.apply(Event("interrupted", 2.0))
    assert view.retries == 1 and view.interrupted


def test_plan_eta_line(tmp_path: Path) -> None:
    from lumozbatch.ui.ratelimit_file import plan_eta_line

    assert plan_eta_line(tmp_path, new=10, now=0.0) is None
    save_snapshot(tmp_path, RateLimitRecord(limit=60, remaining=60, reset_at=105.0, observed_at=100.0, window=5.0))
    # 10 jobs -> 30 calls; window renewed long ago -> paced over half a fresh window
    assert plan_eta_line(tmp_path, new=10, now=1000.0) == (
        "ETA: about 2s for ~30 API calls under the last rate limit seen (60 per 5s)"
    )


def test_a_stall_never_reads_eta_0s_for_work_left() -> None:
    # 8 finished quickly, then a long pause (a spent window): the old pace is overdue, so the
    # estimate goes by the pace including the pause, never "0s" with 52 jobs left.
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 60, "new": 60}))
    for i in range(8):
        view.apply(Event("submit", 0.0, job="a", identity=ident(i)))
        view.apply(Event("downloaded", 1.0 + i * 0.5, job="a", identity=ident(i), file="f"))
    assert view.rate_per_second() == 2.0  # 7 gaps of 0.5 s
    assert view.eta(5.0) == pytest.approx(52 / 2.0 - 0.5)
    # 40 s later nothing more has finished: 7 gaps over the 44 s since the first finish
    assert view.eta(45.0) == pytest.approx(52 / (7 / 44.0))
    assert view.eta(45.0) > 60


def test_eta_is_at_least_a_second_while_work_is_left() -> None:
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 2, "new": 2}))
    view.apply(Event("submit", 0.0, job="a", identity=ident(0)))
    view.apply(Event("downloaded", 10.0, job="a", identity=ident(0), file="f"))
    assert view.eta(10.0) == 10.0
    assert view.eta(19.9) == 1.0  # about due: said as 1s, never 0s
    view.apply(Event("downloaded", 20.0, job="a", identity=ident(1), file="f"))
    assert view.eta(20.0) == 0.0  # nothing left


def test_the_live_line_says_when_there_is_not_enough_to_estimate() -> None:
    from lumozbatch.ui.live import eta_text

    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 3, "new": 3}))
    assert eta_text(view, 1.0) == "ETA estimating"
    view.apply(Event("submit", 0.0, job="a", identity=ident(0)))
    view.apply(Event("downloaded", 2.0, job="a", identity=ident(0), file="f"))
    assert eta_text(view, 2.0) == "ETA 4s"


def test_the_live_rate_line_counts_a_long_wait_down_in_minutes() -> None:
    from lumozbatch.ui.live import render
    from rich.console import Console

    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 3, "new": 3}))
    view.apply(Event("rate_limit", 1.0, limit=600, remaining=0, reset_in=3600.0, wait=3600.0))
    console = Console(width=100, record=True, color_system=None)
    console.print(render(view, 61.0, width=100))
    text = console.export_text()
    assert "waiting 59m00s  (Ctrl-C stops; resume continues)" in text


def test_plan_after_one_short_run_goes_by_the_window_it_saw_not_an_hour(tmp_path: Path) -> None:
    # A run of a few seconds against 600 per 60 s saw one window: plan's ETA for 10 jobs is
    # seconds, not the "about 3m" of an assumed hour-long window.
    import trio
    from email.utils import formatdate

    from lumozbatch.session import save_rate_limit
    from lumozbatch.shell.ratelimit import SharedLimiter
    from lumozbatch.ui.ratelimit_file import plan_eta_line

    wall = 2_000_000_000
    answer = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "570",
              "X-RateLimit-Reset": str(wall + 60), "Date": formatdate(wall, usegmt=True)}

    async def one_run() -> None:
        limiter = SharedLimiter()
        async with limiter.slot() as slot:
            slot.response(200, answer)
        save_rate_limit(tmp_path, limiter)

    trio.run(one_run)
    line = plan_eta_line(tmp_path, new=10, now=load_snapshot(tmp_path).reset_at + 1)
    assert line == "ETA: about 3s for ~30 API calls under the last rate limit seen (600 per 1m00s)"
