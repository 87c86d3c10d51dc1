"""A batch written by an older lumozbatch (``ledger.jsonl``, by the JSONL ``Ledger``) goes
on after the upgrade to ``state.db`` without a single resubmission: done jobs stay done,
the one in flight is polled and downloaded (not sent again), the ambiguous and failed ones
wait for their flags, the pending one is sent once; a torn last line is ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.records import Accepted, Failed, Intent
from lumozbatch.shell.ledger import LEDGER_DIR, LEDGER_FILE, Ledger
from lumozbatch.shell.runner import run_batch
from lumozbatch.shell.sqlite_store import SqliteStore, state_path
from lumozbatch.shell.state import open_reads
from tests.shell.test_runner import Rig, planned, spec


async def test_an_old_ledger_resumes_after_the_upgrade_with_no_resubmission(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(1.0, 2.0))
    specs = [spec(i) for i in range(6)]
    done, _, in_flight, ambiguous, failed, pending = (s.identity for s in specs)
    # 1. the old lumozbatch: the JSONL ledger runs the first two jobs to the end...
    with Ledger.open(tmp_path, create=True) as ledger:
        ledger.append_sync(*planned(specs[:2]))
        await run_batch(rig.runner(ledger))
    # ...then one job is sent and accepted (its output not fetched yet), one is sent and its
    # answer lost, one fails, one is planned, and the last line is torn by a crash
    with Ledger.open(tmp_path, create=False) as ledger:
        ledger.append_sync(*planned(specs[2:])[1:])
        answer = await rig.runner(ledger).client.run(specs[2].model, specs[2].params)
        ledger.append_sync(Intent(id=in_flight, attempt=1), Accepted(id=in_flight, request_id=answer.request_id))
        ledger.append_sync(Intent(id=ambiguous, attempt=1))
        ledger.append_sync(Failed(id=failed, reason="not sent: refused", code="validation_error", billed=False))
    path = tmp_path / LEDGER_DIR / LEDGER_FILE
    with path.open("ab") as fh:
        fh.write(b'{"t":"intent","id":"' + pending.encode() + b'","att')
    runs_before = rig.stats.calls["run"]
    assert runs_before == 3 and rig.stats.jobs_created == 3

    # 2. readers see the old file as it is, without importing it
    with open_reads(tmp_path) as reads:
        assert reads.counts()["done"] == 2 and not state_path(tmp_path).exists()

    # 3. the new lumozbatch: the locked open imports it, keeps the old file, and resumes
    with SqliteStore.open(tmp_path, create=False) as store:
        assert path.with_name(LEDGER_FILE + ".imported").is_file() and not path.exists()
        counts = {state: n for state, n in store.counts().items() if n and state not in ("total", "retired")}
        assert counts == {"done": 2, "submitted": 1, "ambiguous": 1, "failed": 1, "pending": 1}
        assert store.job(pending).attempts == 0  # the torn intent was never recorded
        outcome = await run_batch(rig.runner(store))
        assert outcome.exit_code == 1  # the ambiguous and failed jobs wait for their flags
        assert store.job(in_flight).state is JobState.DONE and store.job(pending).state is JobState.DONE
        assert store.job(ambiguous).state is JobState.AMBIGUOUS and store.job(failed).state is JobState.FAILED
        assert store.job(done).state is JobState.DONE
    # one new request (the pending job, whose torn intent never counted), nothing sent twice
    assert rig.stats.calls["run"] == runs_before + 1
    assert rig.stats.jobs_created == 4 and rig.stats.duplicates() == {}
