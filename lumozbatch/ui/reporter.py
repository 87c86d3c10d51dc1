"""Reporters: where a run's events go, chosen by ``make_reporter``.

A reporter is both a context manager (it starts and stops the live display) and an
``EventSink`` (``reporter(event)``). Four modes:

- ``live``: a rich display on a terminal, redrawn several times a second; failures are also
  printed above it as they happen, so they stay in the scroll-back.
- ``plain``: one line per event (``lumozbatch.ui.lines``), for logs and pipes.
- ``json``: one JSON object per event per line (``Event.to_dict()``), for machines.
- ``quiet``: only errors (failed, ambiguous, warning) and the summary.

``reporter.summary(text)`` prints the final summary where that mode wants it: in json mode
on stderr, so that stdout stays one JSON object per line.
"""

from __future__ import annotations

import json
import os
import sys
from types import TracebackType
from typing import IO, Any, Callable

from rich.console import Console
from rich.live import Live

from lumozbatch.core.events import Event
from lumozbatch.ui.lines import format_event
from lumozbatch.ui.live import LiveView

__all__ = [
    "ERROR_KINDS",
    "JsonReporter",
    "LiveReporter",
    "PlainReporter",
    "Reporter",
    "make_reporter",
]

#: Events shown even by ``--quiet``.
ERROR_KINDS = frozenset({"failed", "ambiguous", "warning"})


class Reporter:
    """Base: an EventSink and a context manager. Subclasses override ``emit``."""

    mode = "base"

    def __init__(self, stream: IO[str], err: IO[str] | None = None) -> None:
        self.stream = stream
        self.err = err if err is not None else stream
        self._closed_streams: set[IO[str]] = set()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __call__(self, event: Event) -> None:
        self.emit(event)

    def emit(self, event: Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any live output; safe to call twice."""

    def summary(self, text: str) -> None:
        """Print the final summary (after the display has stopped)."""
        self.close()
        self._write(self.stream, text)

    def _write(self, stream: IO[str], text: str) -> None:
        if stream in self._closed_streams:
            return
        try:
            stream.write(text if text.endswith("\n") else text + "\n")
            stream.flush()
        except BrokenPipeError:
            # The reader went away (`apply ... | head`). The run itself must go on and record
            # what it paid for; only its narration stops.
            self._closed_streams.add(stream)
            _silence(stream)


def _silence(stream: IO[str]) -> None:
    """Point a broken stream's descriptor at /dev/null, so the interpreter's final flush does
    not fail again (the recipe of Python's signal docs for SIGPIPE)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    # Milliseconds are plenty for people and machines; 17 digits are noise.
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


class PlainReporter(Reporter):
    """One line per event; with ``only`` set, just those kinds (``--quiet``)."""

    mode = "plain"

    def __init__(
        self, stream: IO[str], err: IO[str] | None = None, *, only: frozenset[str] | None = None
    ) -> None:
        super().__init__(stream, err)
        self.only = only
        if only is not None:
            self.mode = "quiet"

    def emit(self, event: Event) -> None:
        if self.only is not None and event.kind not in self.only:
            return
        self._write(self.stream, format_event(event))


class JsonReporter(Reporter):
    """One compact JSON object per event per line; the summary goes to ``err``."""

    mode = "json"

    def emit(self, event: Event) -> None:
        self._write(self.stream, json.dumps(_rounded(event.to_dict()), ensure_ascii=False, default=str))

    def summary(self, text: str) -> None:
        # Looked up now, not at construction: stdout stays pure JSON lines.
        self._write(self.err if self.err is not self.stream else sys.stderr, text)


class LiveReporter(Reporter):
    """A rich live display on a terminal."""

    mode = "live"

    def __init__(
        self,
        stream: IO[str],
        err: IO[str] | None = None,
        *,
        console: Console | None = None,
        clock: Callable[[], float] | None = None,
        refresh_per_second: float = 4,
    ) -> None:
        super().__init__(stream, err)
        self.console = console or Console(file=stream, force_terminal=True)
        self.view = LiveView(clock=clock) if clock else LiveView()
        self.live = Live(
            self.view,
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._started = False

    def __enter__(self) -> "LiveReporter":
        self.live.start()
        self._started = True
        return self

    def emit(self, event: Event) -> None:
        self.view.apply(event)
        if event.kind in ERROR_KINDS:
            # Printed above the display: failures stay in the scroll-back as they happen.
            style = "yellow" if event.kind == "warning" else "red"
            self.console.print(format_event(event), style=style, markup=False, highlight=False, soft_wrap=True)
        if self._started:
            self.live.refresh()

    def close(self) -> None:
        if self._started:
            self._started = False
            self.live.refresh()
            self.live.stop()

    def summary(self, text: str) -> None:
        self.close()
        # soft_wrap: the terminal wraps long lines, so commands copy-paste whole
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def make_reporter(
    *,
    json: bool = False,
    quiet: bool = False,
    stream: IO[str] | None = None,
    is_tty: bool | None = None,
) -> Reporter:
    """The reporter for a command's flags and where its output goes.

    ``--json`` wins over ``--quiet``; otherwise a terminal gets the live display and
    anything else one plain line per event.
    """
    out = stream if stream is not None else sys.stdout
    if json:
        return JsonReporter(out)
    if quiet:
        return PlainReporter(out, only=ERROR_KINDS)
    if is_tty is None:
        isatty = getattr(out, "isatty", None)
        # A dumb terminal (emacs shell, some CI consoles) cannot redraw in place.
        is_tty = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
    if is_tty:
        return LiveReporter(out)
    return PlainReporter(out)
