"""The live display on a real terminal: ``lumozbatch apply --sandbox`` in a tmux pane, the
screen read with ``capture-pane`` while it runs and after it ends."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ui_helpers import MANIFESTS_DIR

pytestmark = pytest.mark.e2e

COLS, ROWS = 100, 40


@pytest.fixture
def tmux_socket():
    if shutil.which("tmux") is None or shutil.which("lumozbatch") is None:
        if os.environ.get("LUMOZBATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("tmux and the lumozbatch script are required (LUMOZBATCH_REQUIRE_BROWSER=1)")
        pytest.skip("tmux or the lumozbatch console script is missing")
    socket = f"lumozbatch-test-{os.getpid()}"
    yield socket
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)


def capture(socket: str) -> str:
    done = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", "live"],
                          capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def test_apply_draws_the_live_display_and_ends_with_the_summary(tmux_socket: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    command = (
        f"lumozbatch apply {shlex.quote(str(MANIFESTS_DIR / 'sketch-portraits.yaml'))} --sandbox --yes "
        f"--out {shlex.quote(str(out_dir))}; echo EXIT=$?; sleep 300"
    )
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-x", str(COLS), "-y", str(ROWS),
                    "-s", "live", "-c", str(tmp_path), command], check=True, timeout=10)
    screens: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # bounded: at most 90 s of 0.2 s polls
        screen = capture(tmux_socket)
        screens.append(screen)
        if "EXIT=" in screen:
            break
        time.sleep(0.2)
    final = screens[-1]
    assert "EXIT=0" in final, final

    during = [s for s in screens if "overall" in s and "EXIT=" not in s]
    assert during, "the live display never showed up:\n" + screens[0]
    # while running: the overall line with its ETA, counts per state, the rate limit, the job row
    assert any(re.search(r"overall .*\d+/10 ETA", s) for s in during)
    assert any(re.search(r"done \d+ .*pending \d+", s) for s in during)
    assert any("rate limit:" in s for s in during)
    assert any(re.search(r"^ *portraits .*\d+/\d+", s, re.M) for s in during)
    # at the end: the last display (all done) stays, then the summary
    assert re.search(r"overall .*10/10", final)
    assert "sketch-portraits: 10 of 10 done" in final
    assert final.index("overall") < final.index("sketch-portraits: 10 of 10 done")
    assert f"outputs: {out_dir}/" in final
    # no traceback, no leftover cursor junk
    assert "Traceback" not in "".join(screens)
    assert (out_dir / "index.html").is_file()


def test_ctrl_c_shows_interrupted_then_the_summary_with_the_way_on(tmux_socket: str, tmp_path: Path) -> None:
    command = (
        f"lumozbatch apply {shlex.quote(str(MANIFESTS_DIR / 'sketch-portraits.yaml'))} --sandbox --yes "
        f"--out out; echo EXIT=$?; sleep 300"
    )
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-x", str(COLS), "-y", str(ROWS),
                    "-s", "live", "-c", str(tmp_path), command], check=True, timeout=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not re.search(r"running [1-9]", capture(tmux_socket)):
        time.sleep(0.1)
    subprocess.run(["tmux", "-L", tmux_socket, "send-keys", "-t", "live", "C-c"], check=True, timeout=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "EXIT=" not in (final := capture(tmux_socket)):
        time.sleep(0.2)
    assert "EXIT=130" in final, final
    assert "interrupted" in final
    assert re.search(r"sketch-portraits: \d+ of 10 done", final)
    assert "continue:" in final
    assert "Traceback" not in final
