"""core.webhook: hook paths (HMAC), delivery bodies, and the decision table. Pure, no I/O;
hypothesis throws random paths, bytes, edits and forged request_ids at it."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lumozbatch.core.records import Completed, Failed, Relinked
from lumozbatch.core.webhook import (
    MAX_BODY_BYTES,
    Action,
    Delivery,
    HookTarget,
    KnownJob,
    Verdict,
    decide,
    hook_path,
    hook_url,
    parse_delivery,
    records_for,
    read_answer_fields,
    verify_hook_path,
)

SECRET = bytes(range(32))
JOB = "3f" * 32  # an identity: sha256 hex
jobs = st.text("abcdefABCDEF0123456789_-", min_size=1, max_size=128)
attempts = st.integers(1, 1_000_000)
secrets_ = st.binary(min_size=32, max_size=64)
URL_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def completed(rid: int = 5, **extra) -> bytes:
    return json.dumps({"success": True, "data": {
        "request_id": rid, "status": "completed", "output": "https://cdn.test/a.png",
        "output_type": "image", **extra}}).encode()


# -- paths ----------------------------------------------------------------------------------


@given(secrets_, jobs, attempts)
def test_a_path_verifies_to_its_job_and_attempt(secret: bytes, job: str, attempt: int) -> None:
    path = hook_path(secret, job, attempt)
    assert path.startswith(f"/hook/{job}/{attempt}/")
    assert verify_hook_path(secret, path) == HookTarget(job, attempt)


@given(secrets_, jobs, attempts, st.data())
def test_any_changed_character_fails(secret: bytes, job: str, attempt: int, data) -> None:
    path = hook_path(secret, job, attempt)
    i = data.draw(st.integers(0, len(path) - 1))
    c = data.draw(URL_CHARS)
    assume(c != path[i])
    changed = path[:i] + c + path[i + 1:]
    assert verify_hook_path(secret, changed) == Verdict(Action.UNKNOWN_JOB, "no such hook")


@given(secrets_, jobs, attempts, st.data())
def test_inserted_or_deleted_characters_fail(secret: bytes, job: str, attempt: int, data) -> None:
    path = hook_path(secret, job, attempt)
    i = data.draw(st.integers(0, len(path)))
    inserted = path[:i] + data.draw(URL_CHARS) + path[i:]
    deleted = path[:i] + path[i + 1:] if i < len(path) else path[:-1]
    for edited in (inserted, deleted):
        assert isinstance(verify_hook_path(secret, edited), Verdict)


@given(secrets_, st.text(max_size=300))
def test_random_paths_never_verify(secret: bytes, path: str) -> None:
    got = verify_hook_path(secret, path)
    assert isinstance(got, Verdict) and got.status == 404


@given(jobs, attempts)
def test_another_batchs_secret_does_not_verify(job: str, attempt: int) -> None:
    path = hook_path(SECRET, job, attempt)
    assert isinstance(verify_hook_path(secrets.token_bytes(32), path), Verdict)


def test_a_path_for_one_attempt_or_job_is_not_valid_for_another() -> None:
    tag = hook_path(SECRET, JOB, 1).rsplit("/", 1)[1]
    assert isinstance(verify_hook_path(SECRET, f"/hook/{JOB}/2/{tag}"), Verdict)
    assert isinstance(verify_hook_path(SECRET, f"/hook/{'4f' * 32}/1/{tag}"), Verdict)
    # non-canonical spellings of the same job and attempt do not verify either
    assert isinstance(verify_hook_path(SECRET, f"/hook/{JOB}/01/{tag}"), Verdict)
    assert isinstance(verify_hook_path(SECRET, f"/hook/%33{JOB[1:]}/1/{tag}"), Verdict)
    assert isinstance(verify_hook_path(SECRET, f"/hook/{JOB}/1/{tag}="), Verdict)
    assert isinstance(verify_hook_path(SECRET, f"/hook/{JOB}/1/{tag}/"), Verdict)


def test_the_secret_is_not_in_the_url_and_must_be_long() -> None:
    url = hook_url("https://me.example/lumoz/", SECRET, JOB, 3)
    assert url.startswith("https://me.example/lumoz/hook/")
    for form in (SECRET.hex(), base64.urlsafe_b64encode(SECRET).decode().rstrip("=")):
        assert form not in url
    with pytest.raises(ValueError):
        hook_path(b"short", JOB, 1)
    with pytest.raises(ValueError):
        hook_path(SECRET, "bad/job", 1)
    with pytest.raises(ValueError):
        hook_path(SECRET, JOB, 0)


def test_the_public_urls_path_prefix_is_accepted_or_stripped() -> None:
    path = hook_path(SECRET, JOB, 1)
    assert verify_hook_path(SECRET, "/lumoz" + path, prefix="/lumoz/") == HookTarget(JOB, 1)
    assert verify_hook_path(SECRET, path, prefix="/lumoz") == HookTarget(JOB, 1)
    assert isinstance(verify_hook_path(SECRET, "/other" + path, prefix="/lumoz"), Verdict)


# -- bodies ---------------------------------------------------------------------------------


def test_the_check_answers_of_the_seed_pages_parse() -> None:
    assert parse_delivery(completed(), "application/json") == Delivery(
        5, "completed", output="https://cdn.test/a.png", output_type="image")
    failed = json.dumps({"success": False, "data": {"request_id": 212121212121212,
                        "status": "failed", "error": "Model execution failed"}}).encode()
    got = parse_delivery(failed, "application/json; charset=utf-8")
    assert isinstance(got, Delivery) and got.failed and got.error == "Model execution failed"
    processing = b'{"success":true,"data":{"request_id":"7","status":"processing","progress":45}}'
    got = parse_delivery(processing, None)
    assert isinstance(got, Delivery) and got.status == "processing" and got.progress == 45.0


def test_top_level_json_and_form_encoding() -> None:
    top = b'{"request_id": 9, "status": "completed", "output": "http://cdn.test/x.webp"}'
    assert parse_delivery(top, "application/json").request_id == 9
    form = b"request_id=9&status=completed&output=https%3A%2F%2Fcdn.test%2Fx.webp"
    got = parse_delivery(form, "application/x-www-form-urlencoded")
    assert isinstance(got, Delivery) and got.output == "https://cdn.test/x.webp"
    assert parse_delivery(b"request_id=9&success=false", None).failed


@pytest.mark.parametrize(("body", "ctype", "action"), [
    (b"x" * (MAX_BODY_BYTES + 1), "application/json", Action.TOO_LARGE),
    (completed() + b" " * MAX_BODY_BYTES, "application/json", Action.TOO_LARGE),
    (b"[" * 60000, "application/json", Action.MALFORMED),  # deep nesting: no RecursionError
    (b"[1, 2]", "application/json", Action.MALFORMED),
    (b'{"data": {"status": "completed", "output": "https://x/y"}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": 5}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": 5, "status": "completed"}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": 5, "status": "completed", "output": "file:///etc/passwd"}}',
     None, Action.MALFORMED),
    (b'{"data": {"request_id": -5, "status": "failed"}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": true, "status": "failed"}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": "\xc2\xb2", "status": "failed"}}', None, Action.MALFORMED),
    (b'{"data": {"request_id": "' + b"9" * 5000 + b'", "status": "failed"}}', None,
     Action.MALFORMED),
    (b"request_id=" + b"9" * 5000 + b"&status=failed", None, Action.MALFORMED),
    (b"\xff\xfe", None, Action.MALFORMED),
    (b"a=1&&&b", "application/x-www-form-urlencoded", Action.MALFORMED),
    (completed(), "text/plain", Action.UNSUPPORTED_TYPE),
    (completed(), "multipart/form-data; boundary=x", Action.UNSUPPORTED_TYPE),
])
def test_unreadable_bodies_are_refused(body: bytes, ctype: str | None, action: Action) -> None:
    got = parse_delivery(body, ctype)
    assert isinstance(got, Verdict) and got.action is action and 400 <= got.status < 500


@settings(max_examples=300)
@given(st.binary(max_size=2048), st.sampled_from([None, "application/json",
       "application/x-www-form-urlencoded", "text/plain"]))
def test_random_bytes_never_crash_and_rarely_parse(body: bytes, ctype: str | None) -> None:
    got = parse_delivery(body, ctype)
    if isinstance(got, Delivery):  # only a body that really says request_id and status
        assert b"request_id" in body and b"status" in body
    else:
        assert 400 <= got.status < 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4), max_leaves=20)


@given(st.dictionaries(st.sampled_from(["request_id", "status", "output", "error", "data",
                                        "success", "progress"]), json_values))
def test_random_json_objects_parse_only_into_whole_deliveries(obj: dict) -> None:
    got = parse_delivery(json.dumps(obj).encode(), "application/json")
    if isinstance(got, Delivery):
        assert got.request_id > 0 and got.status
        assert not got.completed or got.output.startswith(("http://", "https://"))
        assert not got.failed or got.error
    else:
        assert got.status in (400, 413, 415)


def test_read_answer_fields_reads_like_check() -> None:
    fields = read_answer_fields({"success": False, "data": {"request_id": "12", "progress": "45%"}})
    assert (fields.request_id, fields.status, fields.progress) == (12, "failed", 45.0)
    assert read_answer_fields({"data": "x", "request_id": 3}).request_id == 3


# -- the decision table ---------------------------------------------------------------------

DONE = Delivery(5, "completed", output="https://cdn.test/a.png", target=HookTarget(JOB, 1))
FAILED = Delivery(5, "failed", error="boom", target=HookTarget(JOB, 1))
RUNNING = Delivery(5, "processing", progress=40.0, target=HookTarget(JOB, 1))


@pytest.mark.parametrize(("known", "delivery", "action"), [
    (KnownJob("submitted", 5, 1), DONE, Action.COMPLETE),
    (KnownJob("submitted", 5, 1), FAILED, Action.FAIL),
    (KnownJob("submitted", 5, 1), RUNNING, Action.PROGRESS),
    (KnownJob("ambiguous", None, 1), DONE, Action.RELINK),
    (KnownJob("ambiguous", None, 1), FAILED, Action.RELINK),
    (KnownJob("ambiguous", None, 1), RUNNING, Action.RELINK),
    (KnownJob("submitting", None, 1), DONE, Action.RELINK),
    (KnownJob("completed", 5, 1), DONE, Action.DUPLICATE),
    (KnownJob("done", 5, 1), DONE, Action.DUPLICATE),
    (KnownJob("done", 5, 1), RUNNING, Action.DUPLICATE),
    (KnownJob("failed", 5, 1), FAILED, Action.DUPLICATE),
    (KnownJob("done", 5, 1), FAILED, Action.CONTRADICTS),
    (KnownJob("failed", 5, 1), DONE, Action.CONTRADICTS),
    (KnownJob("failed", None, 1), FAILED, Action.NOT_SENT),  # refused (422): nothing created
    (KnownJob("pending", None, 1), DONE, Action.NOT_SENT),
    (KnownJob("submitted", 6, 1), DONE, Action.CONTRADICTS),
    (KnownJob("submitted", 5, 2), DONE, Action.STALE_ATTEMPT),
    (KnownJob("ambiguous", None, 2), DONE, Action.STALE_ATTEMPT),
    (KnownJob("submitted", 5, None), DONE, Action.COMPLETE),
    (None, DONE, Action.UNKNOWN_JOB),
])
def test_decide(known: KnownJob | None, delivery: Delivery, action: Action) -> None:
    verdict = decide(known, delivery)
    assert verdict.action is action
    assert verdict.accepted == (verdict.status < 300)
    assert verdict.changes_state == (action in (Action.COMPLETE, Action.FAIL, Action.RELINK))


STATES = ["pending", "submitting", "submitted", "completed", "done", "failed", "ambiguous"]


@given(st.sampled_from(STATES), st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1),
       st.sampled_from([DONE, FAILED, RUNNING]))
def test_a_forged_request_id_is_never_accepted(state: str, known_rid: int, forged: int,
                                               base: Delivery) -> None:
    assume(known_rid != forged)
    delivery = Delivery(forged, base.status, output=base.output, error=base.error,
                        target=base.target)
    verdict = decide(KnownJob(state, known_rid, 1), delivery)
    assert not verdict.accepted and not verdict.changes_state
    assert verdict.status == 409


@given(st.sampled_from(STATES), st.one_of(st.none(), st.integers(1, 99)),
       st.integers(1, 5), st.integers(1, 5), st.sampled_from([DONE, FAILED, RUNNING]))
def test_only_the_current_attempt_can_change_anything(state: str, rid: int | None, current: int,
                                                      sent: int, base: Delivery) -> None:
    delivery = Delivery(base.request_id, base.status, output=base.output, error=base.error,
                        target=HookTarget(JOB, sent))
    verdict = decide(KnownJob(state, rid, current), delivery)
    if verdict.changes_state:
        assert sent == current and state in ("submitted", "submitting", "ambiguous")
    if sent != current:
        assert verdict.action is Action.STALE_ATTEMPT


# -- the records a decided delivery writes --------------------------------------------------


def test_records_for_each_verdict_that_changes_state() -> None:
    done = Delivery(request_id=7, status="completed", output="https://s/o.png", output_type="image")
    lost = Delivery(request_id=7, status="failed", error="nsfw")
    running = Delivery(request_id=7, status="processing", progress=40.0)
    assert records_for("a", Verdict(Action.COMPLETE), done) == [
        Completed(id="a", request_id=7, url="https://s/o.png", output_type="image")]
    assert records_for("a", Verdict(Action.FAIL), lost) == [
        Failed(id="a", reason="nsfw", code="failed", billed=True)]
    assert records_for("a", Verdict(Action.RELINK), done) == [
        Relinked(id="a", request_id=7), Completed(id="a", request_id=7, url="https://s/o.png", output_type="image")]
    assert records_for("a", Verdict(Action.RELINK), running) == [Relinked(id="a", request_id=7)]
    for action in (Action.PROGRESS, Action.DUPLICATE, Action.CONTRADICTS, Action.STALE_ATTEMPT):
        assert records_for("a", Verdict(action), done) == []


def test_webhook_settings_take_an_http_url_and_its_port() -> None:
    from lumozbatch.core.webhook import WebhookSettings
    from lumozbatch.errors import UsageError

    assert WebhookSettings("https://hooks.example.com/lb").port == 443
    assert WebhookSettings("http://203.0.113.5:8700/").port == 8700
    assert WebhookSettings("http://host").port == 80
    for bad in ("ftp://host/x", "hooks.example.com", "https://host/x?k=1", "http://host:99999/"):
        with pytest.raises(UsageError):
            WebhookSettings(bad)


def test_a_late_delivery_for_a_job_whose_output_went_missing_is_a_duplicate() -> None:
    done = Delivery(request_id=7, status="completed", output="https://s/o.png")
    assert decide(KnownJob("missing", 7, 1), done).action is Action.DUPLICATE


def test_the_webhook_event_is_flat_in_json() -> None:
    from lumozbatch.core.events import Event

    event = Event("webhook", time=1.5, identity=JOB, key=JOB[:12], attempt=2, request_id=7, status="completed",
                  result="complete", http_status=200, received=3, polls_saved=2)
    assert event.kind == "webhook"
    assert event.to_dict() == {"event": "webhook", "time": 1.5, "identity": JOB, "key": JOB[:12], "attempt": 2,
                               "request_id": 7, "status": "completed", "result": "complete",
                               "http_status": 200, "received": 3, "polls_saved": 2}
