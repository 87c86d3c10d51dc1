"""The outputs check of a big batch, in a child process beside the planning: it names the
same jobs the parent's own check would repair, and the repairs come out the same."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lumozbatch.core.records import Batch, Retire
from lumozbatch.shell import outputs_check
from lumozbatch.shell.outputs_check import Found, OutputsCheck, findings
from lumozbatch.shell.reconcile import reconcile_outputs
from lumozbatch.shell.results import append_result
from lumozbatch.shell.sqlite_store import SqliteStore
from tests.shell.test_reconcile import download, job
from tests.shell.test_s3_batch import MANIFEST as BUCKETED

IDS = [f"{n:02d}" + "c" * 62 for n in range(8)]


def damaged_batch(out: Path) -> set[str]:
    """Eight done jobs, damaged in every way the check knows; returns the suspects."""
    with SqliteStore.open(out, create=True) as store:
        store.append_sync(Batch(name="b", manifest="m"), *(job(i, f"p/{n}") for n, i in enumerate(IDS)))
        for n, identity in enumerate(IDS):
            download(store, out, identity, f"paid {n}".encode(), kept=n != 4, filename=f"p/{n}")
            append_result(out, {"job": "p", "identity": identity, "variables": {}, "model": "m", "params": {},
                                "request_id": 1, "file": f"p/{n}.png", "sha256": "0" * 64, "bytes": 6})
        store.append_sync(Retire(id=IDS[6]))
    (out / "p/1.png").unlink()  # a name deleted by hand
    os.unlink(next((out / ".lumozbatch/objects").glob(f"*/{IDS[2]}.png")))  # a kept copy deleted
    (out / "p/3.png").unlink()
    (out / "p/3.png").write_bytes(b"another file")  # the name shows something else
    (out / "p/6.png").unlink()  # a retired job's name: its files are not looked after...
    # ...unless the plan brings it back: the check names it all the same
    return {IDS[1], IDS[2], IDS[3], IDS[4], IDS[6]}  # IDS[4]: never kept (from before the store)


def test_the_child_names_the_jobs_whose_files_or_rows_are_not_as_recorded(tmp_path: Path) -> None:
    expected = damaged_batch(tmp_path)
    rows = [line for line in (tmp_path / "results.jsonl").read_text().splitlines() if IDS[5] not in line]
    (tmp_path / "results.jsonl").write_text("".join(f"{row}\n" for row in rows))  # as if killed before its row
    assert {i for kind, i in findings(tmp_path) if kind == "suspect"} == expected
    assert OutputsCheck.start(tmp_path).result() == Found(frozenset(expected), frozenset({IDS[5]}))


def test_repairing_the_suspects_is_repairing_every_job(tmp_path: Path) -> None:
    whole, aside = tmp_path / "whole", tmp_path / "aside"
    damaged_batch(whole)
    shutil.copytree(whole, aside, symlinks=True)
    found = OutputsCheck.start(aside).result()
    assert found is not None
    with SqliteStore.open(whole, create=False) as store:
        by_every_job = reconcile_outputs(store, whole)
        rows = {i: store.job(i) for i in IDS}
    with SqliteStore.open(aside, create=False) as store:
        by_suspects = reconcile_outputs(store, aside, suspects=found.suspects)
        assert {i: store.job(i) for i in IDS} == rows
    assert (by_suspects.restored, by_suspects.adopted, by_suspects.missing) == (
        by_every_job.restored, by_every_job.adopted, by_every_job.missing) == (2, 1, 0)
    for n in range(8):
        name = f"p/{n}.png"
        assert (whole / name).exists() == (aside / name).exists()
        if (whole / name).exists():
            assert (whole / name).read_bytes() == (aside / name).read_bytes()
    assert (aside / "p/1.png").read_bytes() == b"paid 1" and not (aside / "p/6.png").exists()


def test_a_child_that_cannot_answer_leaves_the_check_to_the_parent(tmp_path: Path) -> None:
    assert OutputsCheck.start(tmp_path / "no batch here").result() is None


def test_too_many_suspects_are_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    damaged_batch(tmp_path)
    monkeypatch.setattr(outputs_check, "MAX_FOUND", 3)
    assert outputs_check._main(str(tmp_path)) == 3
    assert "end" not in capsys.readouterr().out.splitlines()


def test_a_run_that_ends_first_stops_the_child() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    check = OutputsCheck(sleeper)
    check.cancel()
    assert sleeper.returncode is not None
    check.cancel()  # idempotent


MANIFEST = BUCKETED.replace("name: bucketed", "name: checked")  # three jobs, one a seed


def test_a_re_apply_repairs_through_the_check_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lumozbatch import open_batch

    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    assert open_batch(manifest, sandbox=True).apply().exit_code == 0
    out = tmp_path / "outputs" / "checked"
    first = sorted(out.glob("j/*"))
    paid = {p.name: p.read_bytes() for p in first}
    first[0].unlink()
    results = out / "results.jsonl"
    rows = results.read_text().splitlines()
    results.write_text("".join(f"{row}\n" for row in rows[1:]))  # as if killed before a row
    started: list[Path] = []
    start = OutputsCheck.start
    monkeypatch.setattr(outputs_check, "MIN_DONE", 1)
    monkeypatch.setattr(OutputsCheck, "start", classmethod(lambda cls, d: started.append(d) or start(d)))
    outcome = open_batch(manifest, sandbox=True).apply()
    assert outcome.exit_code == 0 and [d.resolve() for d in started] == [out]
    assert outcome.calls["run"] == 0
    assert {p.name: p.read_bytes() for p in out.glob("j/*")} == paid  # back from the store
    journal = out / ".lumozbatch" / "sandbox-journal.jsonl"  # the sandbox's record of runs sent
    assert len(journal.read_text().splitlines()) == 3  # and nothing bought again
    assert sorted(json.loads(r)["identity"] for r in results.read_text().splitlines()) == sorted(
        json.loads(r)["identity"] for r in rows)
