"""`apply ... | head -1`: the reader goes away; the run still finishes and records everything."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from ui_helpers import MANIFESTS_DIR
from lumozbatch.core.events import Event
from lumozbatch.ui.reporter import JsonReporter, PlainReporter


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_reporters_stop_narrating_on_a_broken_pipe() -> None:
    for reporter in (PlainReporter(ClosedPipe()), JsonReporter(ClosedPipe())):
        with reporter:
            reporter(Event("plan", counts={"total": 1}))
            reporter(Event("warning", reason="still fine"))  # no exception, nothing written


@pytest.mark.e2e
@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_apply_survives_its_reader_going_away(tmp_path: Path, flag: list[str]) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["lumozbatch", "apply", str(MANIFESTS_DIR / "sketch-portraits.yaml"), "--sandbox", "--out", str(out), *flag],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=90) == 0, err
    assert "Error" not in err and "Traceback" not in err
    assert b"plan" in first
    status = subprocess.run(["lumozbatch", "status", str(out), "--json"], capture_output=True, text=True,
                            timeout=30, check=True)
    assert json.loads(status.stdout)["counts"]["done"] == 10
