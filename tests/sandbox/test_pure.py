"""The sandbox's pure parts: knobs, parameter coercion/validation/hashing, fixed windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumozbatch.sandbox.config import SandboxConfig, parse_latency, parse_rate_limit
from lumozbatch.sandbox.params import coerce_params, submission_key, validate_params
from lumozbatch.sandbox.ratelimit import UNLIMITED_LIMIT, FixedWindowLimiter

FLUX = "flux-sketch-smudge"


@pytest.mark.parametrize(("text", "want"), [
    ("600/60", (600, 60.0)), ("60/5", (60, 5.0)), ("10/2.5s", (10, 2.5)), ("0", (0, 60.0)),
    (" 5 / 1 ", (5, 1.0)),
])
def test_parse_rate_limit(text: str, want: tuple[int, float]) -> None:
    assert parse_rate_limit(text) == want


@pytest.mark.parametrize("text", ["", "x/60", "10/0", "-1/60", "10/60/1"])
def test_parse_rate_limit_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_limit(text)


def test_parse_latency() -> None:
    assert parse_latency("1-3") == (1.0, 3.0)
    assert parse_latency("0.5") == (0.5, 0.5)
    assert parse_latency("0-0") == (0.0, 0.0)
    for bad in ("3-1", "a-b", "-1", ""):
        with pytest.raises(ValueError):
            parse_latency(bad)


def test_config_defaults_and_validation() -> None:
    cfg = SandboxConfig()
    assert (cfg.host, cfg.port, cfg.api_keys, cfg.rate_limit, cfg.rate_window) == (
        "127.0.0.1", 8765, ("sandbox-key",), 600, 60.0)
    assert cfg.latency == (1.0, 3.0) and cfg.sync_threshold == 0.5 and cfg.storage_port is None
    with pytest.raises(ValueError, match="fail_rate"):
        SandboxConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="latency"):
        SandboxConfig(latency=(2, 1))
    with pytest.raises(ValueError, match="API key"):
        SandboxConfig(api_keys=())


def test_forbidden_models_for_everyone_or_one_key() -> None:
    cfg = SandboxConfig(forbidden_models=("hidream-l1", "k2:flux-sketch-smudge"))
    assert cfg.is_forbidden("any", "hidream-l1")
    assert cfg.is_forbidden("k2", FLUX)
    assert not cfg.is_forbidden("k1", FLUX)


def test_coercion_follows_the_schema_types() -> None:
    got = coerce_params(FLUX, {
        "model_id": FLUX, "api_key": "leak", "prompt": "30", "num_inference_steps": "30",
        "guidance": "7.5", "prompt_strength": "1", "seed": "", "megapixels": "1",
        "output_quality": "80", "unknown": "3",
    })
    assert got == {"prompt": "30", "num_inference_steps": 30, "guidance": 7.5,
                   "prompt_strength": 1, "seed": "", "megapixels": "1", "output_quality": 80,
                   "unknown": "3"}
    assert coerce_params(FLUX, {"seed": "42"})["seed"] == 42
    assert coerce_params(FLUX, {"num_inference_steps": "28.5"})["num_inference_steps"] == "28.5"


def test_validation_details_per_field() -> None:
    params = coerce_params(FLUX, {"prompt": "x", "aspect_ratio": "7:1", "guidance": "11",
                                  "num_inference_steps": "many", "colour": "red"})
    details = validate_params(FLUX, params)
    assert details == {
        "colour": ["The colour field is not a parameter of flux-sketch-smudge."],
        "aspect_ratio": [details["aspect_ratio"][0]],
        "guidance": ["The guidance field must not be greater than 10."],
        "num_inference_steps": ["The num_inference_steps field must be an integer."],
    }
    assert details["aspect_ratio"][0].startswith("The selected aspect_ratio is invalid")
    assert validate_params("hidream-l1", {}) == {"prompt": ["The prompt field is required."]}
    assert validate_params("hidream-l1", {"prompt": "ok", "guidance_scale": 7.5}) == {}
    assert "seed" in validate_params(FLUX, {"prompt": "x", "aspect_ratio": "1:1", "seed": "abc"})


def test_submission_key_is_canonical() -> None:
    typed = {"prompt": "a tower", "guidance_scale": 7.5, "num_inference_steps": 30}
    form = {"prompt": "a tower", "guidance_scale": "7.5", "num_inference_steps": "30",
            "webhook": "http://127.0.0.1:9/hook"}
    assert submission_key("hidream-l1", typed) == submission_key("hidream-l1", form)
    assert submission_key(FLUX, {"guidance": 3}) == submission_key(FLUX, {"guidance": 3.0})
    assert submission_key(FLUX, {"guidance": 3}) == submission_key(FLUX, {"guidance": "3"})
    assert submission_key(FLUX, {"seed": 1}) != submission_key(FLUX, {"seed": 2})
    assert submission_key(FLUX, {"seed": 1}) != submission_key("hidream-l1", {"seed": 1})


def test_fixed_window_exact_reset_and_remaining() -> None:
    lim = FixedWindowLimiter(3, 10.0)
    t = 1_700_000_003.0  # window [1_700_000_000, 1_700_000_010)
    got = [lim.hit("k", t) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert {d.reset for d in got} == {1_700_000_010}
    assert got[3].retry_after == 7
    assert lim.hit("other", t).remaining == 2  # per key
    nxt = lim.hit("k", 1_700_000_010.0)  # the next window opens exactly at reset
    assert (nxt.allowed, nxt.remaining, nxt.reset) == (True, 2, 1_700_000_020)


def test_fractional_windows_round_reset_up() -> None:
    d = FixedWindowLimiter(1, 2.5).hit("k", 1_700_000_001.0)
    assert d.reset == 1_700_000_003  # window ends at ...002.5; a client must not be early
    assert d.retry_after == 2


def test_unlimited_still_announces_headers() -> None:
    lim = FixedWindowLimiter(0, 60.0)
    d = lim.hit("k", 120.0)
    assert d.allowed and d.limit == UNLIMITED_LIMIT and d.remaining == UNLIMITED_LIMIT - 1
    assert dict(d.headers())[b"x-ratelimit-reset"] == b"180"


def test_public_api_is_sorted_and_complete() -> None:
    import lumozbatch.sandbox as sandbox

    assert sandbox.__all__ == sorted(sandbox.__all__)
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
    # the names the runner and UI engineers code against
    assert {"SandboxConfig", "create_app", "serve_sandbox", "sandbox_transport",
            "RunningSandbox", "SandboxStats", "submission_key"} <= set(sandbox.__all__)


_flux_params = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40), "aspect_ratio": st.sampled_from(["1:1", "16:9"])},
    optional={
        "guidance": st.floats(0, 10, allow_nan=False) | st.integers(0, 10),
        "num_inference_steps": st.integers(1, 50),
        "seed": st.integers(0, 2**32 - 1) | st.just(""),
        "output_quality": st.integers(0, 100),
        "megapixels": st.sampled_from(["1", "0.25"]),
    },
)


@given(_flux_params)
def test_typed_params_and_their_form_encoding_are_one_submission(params: dict) -> None:
    # what a runner holds (typed) and what reaches the server (form strings) count as one
    form = {k: v if isinstance(v, str) else repr(v) for k, v in params.items()}
    assert submission_key(FLUX, params) == submission_key(FLUX, form)
    assert validate_params(FLUX, coerce_params(FLUX, form)) == {}
