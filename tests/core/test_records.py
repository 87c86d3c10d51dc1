"""core.records: one typed class per ledger record, written byte for byte as before."""

from __future__ import annotations

import json

import pytest

from lumozbatch.core import records as R
from lumozbatch.core.jobspec import RANDOM_SEED, JobSpec
from lumozbatch.core.ledger_codec import RECORD_TYPES, encode, pin_job, pin_job_record, replay

# Lines as the dict-building writers (runner, planning, apply) wrote them: old ledgers hold these.
LEGACY = [
    (R.Batch(name="b", manifest="m.yaml", api="sandbox", at=1.5),
     b'{"t":"batch","v":1,"name":"b","manifest":"m.yaml","api":"sandbox","at":1.5}\n'),
    (R.Job(id="a", job="p", index=0, repeat=0, model="m", params={"seed": 1}, variables={"x": "\u00e9"}, filename="p/a"),
     '{"t":"job","id":"a","job":"p","index":0,"repeat":0,"model":"m","params":{"seed":1},'
     '"variables":{"x":"\u00e9"},"filename":"p/a","known_model":true}\n'.encode()),
    (R.Retire(id="a"), b'{"t":"retire","id":"a"}\n'),
    (R.Intent(id="a", attempt=2), b'{"t":"intent","id":"a","attempt":2}\n'),
    (R.Unsent(id="a", reason="429"), b'{"t":"unsent","id":"a","reason":"429"}\n'),
    (R.Accepted(id="a", request_id=885622461744349), b'{"t":"accepted","id":"a","request_id":885622461744349}\n'),
    (R.Completed(id="a", request_id=None, url="http://s/o.png", output_type=None),
     b'{"t":"completed","id":"a","request_id":null,"url":"http://s/o.png","output_type":null}\n'),
    (R.Downloaded(id="a", file="p/a.png", sha256="0" * 64, bytes=10),
     b'{"t":"downloaded","id":"a","file":"p/a.png","sha256":"' + b"0" * 64 + b'","bytes":10}\n'),
    (R.Failed(id="a", reason="nope", code=None, billed=False),
     b'{"t":"failed","id":"a","reason":"nope","code":null,"billed":false}\n'),
    (R.Ambiguous(id="a", reason="timeout"), b'{"t":"ambiguous","id":"a","reason":"timeout"}\n'),
    (R.Reset(id="a", why="retry-failed"), b'{"t":"reset","id":"a","why":"retry-failed"}\n'),
]
# Records that came with the output store and the anchored batch.
LATER = [
    (R.Batch(name="b", manifest="m.yaml", api="sandbox", manifest_key="m/m.yaml", at=1.5),
     b'{"t":"batch","v":1,"name":"b","manifest":"m.yaml","api":"sandbox","manifest_key":"m/m.yaml","at":1.5}\n'),
    (R.Moved(manifest="n.yaml", manifest_key="n.yaml"), b'{"t":"moved","manifest":"n.yaml","manifest_key":"n.yaml"}\n'),
    (R.Downloaded(id="a", file="p/a.png", sha256="0" * 64, bytes=10, object=".lumozbatch/objects/aa/a.png"),
     b'{"t":"downloaded","id":"a","file":"p/a.png","sha256":"' + b"0" * 64 + b'","bytes":10,'
     b'"object":".lumozbatch/objects/aa/a.png"}\n'),
    (R.Stored(id="a", object=".lumozbatch/objects/aa/a.png", file="p/a.png"),
     b'{"t":"stored","id":"a","object":".lumozbatch/objects/aa/a.png","file":"p/a.png"}\n'),
    (R.Missing(id="a", reason="deleted"), b'{"t":"missing","id":"a","reason":"deleted"}\n'),
    (R.Relinked(id="a", request_id=885622461744349), b'{"t":"relinked","id":"a","request_id":885622461744349}\n'),
    (R.Limits(max_generations=None), b'{"t":"limits","max_generations":null}\n'),
    (R.Batch(name="b", manifest="m.yaml", max_generations=20),
     b'{"t":"batch","v":1,"name":"b","manifest":"m.yaml","api":null,"max_generations":20}\n'),
]


@pytest.mark.parametrize(("record", "line"), LEGACY + LATER, ids=[r.TYPE for r, _ in LEGACY + LATER])
def test_each_record_writes_the_line_it_always_did_and_reads_back(record: R.Record, line: bytes) -> None:
    assert encode(record) == line
    assert R.from_wire(json.loads(line)) == record


def test_every_record_type_has_one_class() -> None:
    assert set(R.RECORD_CLASSES) == RECORD_TYPES == {r.TYPE for r, _ in LEGACY + LATER}


def test_from_wire_ignores_unknown_keys_and_refuses_missing_fields() -> None:
    assert R.from_wire({"t": "retire", "id": "a", "by": "a newer writer"}) == R.Retire(id="a")
    with pytest.raises(ValueError, match="'accepted'"):
        R.from_wire({"t": "accepted", "id": "a"})
    with pytest.raises(ValueError, match="unknown record type"):
        R.from_wire({"t": "nope"})


def test_stamped_keeps_a_time_it_already_has() -> None:
    assert R.stamped(R.Retire(id="a"), 3.0).at == 3.0
    assert R.stamped(R.Retire(id="a", at=1.0), 3.0).at == 1.0


def test_records_are_frozen() -> None:
    with pytest.raises(AttributeError):
        R.Retire(id="a").id = "b"  # type: ignore[misc]


def test_typed_and_wire_records_replay_alike() -> None:
    typed = [r for r, _ in LEGACY if r.TYPE in ("batch", "job", "intent", "accepted")]
    wire = [json.loads(encode(r)) for r in typed]
    counts = replay(typed).counts()
    assert counts == replay(wire).counts()
    assert counts["submitted"] == 1


def test_pin_job_is_pin_job_record_typed() -> None:
    spec = JobSpec("p", 0, 0, "m", {"prompt": "x", "seed": RANDOM_SEED}, {}, "a" * 64, "p/a")
    assert R.to_wire(pin_job(spec, 9)) == pin_job_record(spec, 9)
    assert pin_job(spec, 9).params["seed"] == 9
