"""The document-level checks: API keys anywhere, the manifest schema, defaults, pricing."""

from __future__ import annotations

from tests.core.manifest_helpers import HEAD, build, messages


def test_schema_errors_in_plain_words() -> None:
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 0}\nlimitz: {}\n")
    assert "unknown key 'limitz' (did you mean 'limits'?)" in out
    assert "jobs[0].repeat: 0 is below the minimum 1" in out


def test_duplicate_job_ids() -> None:
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n  - {id: a, model: hidream-l1, params: {prompt: y}}\n")
    assert "m.yaml:5:10: jobs[1].id: duplicate job id 'a' (also jobs[0])" in out


def test_pricing_for_a_model_no_job_uses_is_a_warning() -> None:
    m = build(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\npricing: {hidream-l2: 0.1}\n")
    assert m.pricing == {"hidream-l2": 0.1}
    assert "no job uses model 'hidream-l2' (did you mean 'hidream-l1'?)" in m.warnings[0].message


def test_defaults_unknown_to_every_model_is_an_error() -> None:
    out = messages(HEAD + "defaults: {guidanse: 3}\njobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n")
    assert "'guidanse' is not a parameter of any job's model" in out


def test_apikey_spellings_refused_anywhere() -> None:
    for key in ("api_key", "API_KEY", "apikey", "api-key"):
        assert "must not hold an API key" in messages(HEAD + f"jobs:\n  - {{id: a, model: x, params: {{nested: {{{key}: s}}}}}}\n")


def test_a_bad_field_does_not_hide_an_unknown_variable() -> None:
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: '{undefined_var} and {}'}}\n")
    assert "empty {}" in out
    assert "unknown variable {undefined_var} in the template" in out


def test_a_bad_field_in_a_filename_does_not_hide_an_unknown_name() -> None:
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, filename: '{nope}-{}'}\n")
    assert "empty {}" in out
    assert "unknown name {nope} in the filename template" in out


def test_a_duplicate_job_id_does_not_hide_that_jobs_other_errors() -> None:
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n"
                   "  - {id: a, model: hidream-l1, params: {prompt: '{who}', guidanse: 3}}\n")
    assert "duplicate job id 'a' (also jobs[0])" in out
    assert "unknown variable {who}" in out
    assert "hidream-l1 has no parameter 'guidanse'" in out
