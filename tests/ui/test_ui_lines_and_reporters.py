"""The plain and JSON event streams, --quiet, and the live display's renderable."""

from __future__ import annotations

import io
import json

from rich.console import Console

from lumozbatch.core.events import Event
from lumozbatch.ui import make_reporter
from lumozbatch.ui.lines import format_bytes, format_duration
from lumozbatch.ui.live import render
from lumozbatch.ui.reporter import JsonReporter, LiveReporter, PlainReporter
from lumozbatch.ui.view import RunView

IDENT = "3f2a9c1e2b4d" + "0" * 52
JOB = {"job": "portraits", "identity": IDENT, "key": IDENT[:12], "model": "flux-sketch-smudge"}


def run_events() -> list[Event]:
    return [
        Event("plan", 0.0, counts={"total": 2, "new": 2, "done": 0}, name="sketch", out_dir="outputs/sketch"),
        Event("submit", 0.5, **JOB),
        Event("accepted", 1.0, request_id=42, **JOB),
        Event("progress", 2.0, request_id=42, progress=45.0, **JOB),
        Event("rate_limit", 2.0, limit=60, remaining=0, reset_in=4.0, wait=4.0),
        Event("completed", 3.0, request_id=42, url="http://h/o.png", **JOB),
        Event("downloaded", 3.5, file="portraits/a.png", bytes=2048, sha256="ab" * 32, **JOB),
        Event("failed", 4.0, reason="guidance must be at most 10", code="validation_error", **JOB),
        Event("finished", 5.0, counts={"done": 1, "failed": 1}, exit_code=1),
    ]


def test_format_helpers() -> None:
    assert [format_duration(x) for x in (None, 0.4, 59.6, 125, 3720)] == ["?", "0s", "1m00s", "2m05s", "1h02m"]
    assert format_bytes(512) == "512 B"
    assert format_bytes(2048) == "2.0 KB"


def test_plain_stream_is_one_line_per_event() -> None:
    out = io.StringIO()
    reporter = make_reporter(stream=out, is_tty=False)
    assert isinstance(reporter, PlainReporter)
    with reporter:
        for event in run_events():
            reporter(event)
    lines = out.getvalue().splitlines()
    assert lines == [
        "[    0.0s] plan sketch: 2 jobs (2 new) -> outputs/sketch",
        "[    0.5s] submit portraits#3f2a9c1e2b4d (flux-sketch-smudge)",
        "[    1.0s] accepted portraits#3f2a9c1e2b4d request 42",
        "[    2.0s] progress portraits#3f2a9c1e2b4d 45%",
        "[    2.0s] rate limit: 0/60 left, resets in 4s, waiting 4.0s",
        "[    3.0s] completed portraits#3f2a9c1e2b4d",
        "[    3.5s] downloaded portraits#3f2a9c1e2b4d -> portraits/a.png (2.0 KB)",
        "[    4.0s] FAILED portraits#3f2a9c1e2b4d: guidance must be at most 10 [validation_error]",
        "[    5.0s] finished: jobs (1 done, 1 failed), exit 1",
    ]


def test_json_stream_is_one_object_per_line_and_summary_on_stderr(capsys) -> None:
    out = io.StringIO()
    reporter = make_reporter(json=True, quiet=True, stream=out)  # --json wins over --quiet
    assert isinstance(reporter, JsonReporter)
    events = run_events()
    with reporter:
        for event in events:
            reporter(event)
        reporter.summary("sketch: 1 of 2 done")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows == [e.to_dict() for e in events]
    assert rows[1] == {"event": "submit", "time": 0.5, **JOB}
    assert "sketch: 1 of 2 done" in capsys.readouterr().err


def test_quiet_shows_only_errors_and_the_summary() -> None:
    out = io.StringIO()
    reporter = make_reporter(quiet=True, stream=out, is_tty=True)
    assert reporter.mode == "quiet"
    with reporter:
        for event in run_events():
            reporter(event)
        reporter(Event("ambiguous", 6.0, reason="read timeout", **JOB))
        reporter(Event("warning", 6.5, reason="unknown model zzz"))
        reporter.summary("the summary")
    assert out.getvalue().splitlines() == [
        "[    4.0s] FAILED portraits#3f2a9c1e2b4d: guidance must be at most 10 [validation_error]",
        "[    6.0s] AMBIGUOUS portraits#3f2a9c1e2b4d: read timeout (may have been billed)",
        "[    6.5s] warning: unknown model zzz",
        "the summary",
    ]


def test_terminal_gets_the_live_display() -> None:
    out = io.StringIO()
    assert isinstance(make_reporter(stream=out, is_tty=True), LiveReporter)
    assert isinstance(make_reporter(stream=out, is_tty=False), PlainReporter)
    assert isinstance(make_reporter(stream=out), PlainReporter)  # StringIO is no terminal


def test_live_reporter_prints_failures_above_and_the_summary_after() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None, record=True)
    reporter = LiveReporter(io.StringIO(), console=console, clock=lambda: 0.0, refresh_per_second=1)
    with reporter:
        for event in run_events()[:-1]:
            reporter(event)
        reporter.summary("sketch: 1 of 2 done, 1 failed")
    assert not reporter.live.is_started
    text = console.export_text()
    assert "FAILED portraits#3f2a9c1e2b4d: guidance must be at most 10" in text
    assert text.rstrip().endswith("sketch: 1 of 2 done, 1 failed")


def screen(view: RunView, now: float) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None, record=True)
    console.print(render(view, now, width=100))
    return console.export_text()


def test_live_screen_shows_progress_counts_rate_limit_countdown_and_eta() -> None:
    other = "9" * 64
    view = RunView()
    view.apply(Event("plan", 0.0, counts={"total": 4, "new": 4}, name="sketch",
                     extra={"jobs": {"portraits": {"total": 3}, "towers": 1}}))
    for event in run_events()[1:7]:
        view.apply(event)
    view.apply(Event("submit", 4.0, job="towers", identity=other, model="hidream-l1"))
    view.apply(Event("failed", 5.0, job="towers", identity=other, reason="NSFW", code="content"))
    text = screen(view, 6.0)
    assert "sketch" in text
    assert "2/4" in text  # finished of total
    assert "done 1" in text and "pending 2" in text and "failed 1" in text
    # 4 s wait announced at t=2.0; at t=6.0 it is over, the window reset
    assert "rate limit: window renewed, sending (60 per window)" in text
    assert "waiting" not in text
    assert "failed towers#999999999999: NSFW" in text
    assert "1/3" in text  # portraits: 1 done of 3
    later = screen(view, 3.0)  # one second into the wait: the countdown reads 3 s
    assert "rate limit: 0/60 left, resets in 3s  waiting 3.0s" in later
    # two finishes 1.5 s apart -> 1/1.5 jobs/s; 2 left -> 3 s, minus the 1 s since the last
    assert view.eta(6.0) == 2.0
    assert "ETA 2s" in text


def test_json_times_are_rounded_to_milliseconds() -> None:
    out = io.StringIO()
    with make_reporter(json=True, stream=out) as reporter:
        reporter(Event("rate_limit", 1.23456789, limit=60, remaining=3, reset_in=4.0004999, wait=0.1 + 0.2))
    assert json.loads(out.getvalue()) == {"event": "rate_limit", "time": 1.235, "limit": 60, "remaining": 3,
                                          "reset_in": 4.0, "wait": 0.3}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_dumb_terminal_gets_plain_lines(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(make_reporter(stream=FakeTerminal()), LiveReporter)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_reporter(stream=FakeTerminal()), PlainReporter)


def _hook(time: float, result: str, status: int, received: int, saved: int, **kw) -> Event:
    return Event("webhook", time=time, request_id=42, attempt=1, status="completed", result=result,
                 http_status=status, received=received, polls_saved=saved, **JOB, **kw)


def test_webhook_lines_say_what_became_of_each_delivery_and_count_them() -> None:
    from lumozbatch.ui.lines import format_event

    assert format_event(_hook(3.0, "complete", 200, 1, 1)) == (
        "[    3.0s] webhook portraits#3f2a9c1e2b4d request 42 completed; 1 received, 1 polls saved")
    assert format_event(_hook(3.1, "relink", 200, 2, 2)).endswith("completed (relinked); 2 received, 2 polls saved")
    assert format_event(_hook(3.2, "duplicate", 200, 3, 2)).endswith("completed (duplicate); 3 received, 2 polls saved")
    refused = format_event(_hook(3.3, "contradicts", 409, 4, 2, reason="this job has another request_id"))
    assert refused.endswith("completed (refused: this job has another request_id); 4 received, 2 polls saved")


def test_the_live_display_counts_webhooks_and_json_carries_them_flat() -> None:
    view = RunView()
    for event in run_events()[:3] + [_hook(3.0, "complete", 200, 1, 1), _hook(3.1, "relink", 200, 2, 2)]:
        view.apply(event)
    assert (view.hooks.received, view.hooks.polls_saved, view.hooks.relinked) == (2, 2, 1)
    console = Console(width=100, record=True)
    console.print(render(view, 3.5))
    assert "webhooks: 2 received, 2 polls saved, 1 relinked" in console.export_text()
    out = io.StringIO()
    with JsonReporter(out) as reporter:
        reporter(_hook(3.0, "complete", 200, 1, 1))
    line = json.loads(out.getvalue())
    assert line["event"] == "webhook" and line["result"] == "complete" and line["http_status"] == 200
    assert line["request_id"] == 42 and line["attempt"] == 1 and line["job"] == "portraits"
