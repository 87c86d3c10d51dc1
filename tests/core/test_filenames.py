"""Output filenames: the readable default, templates, and what makes a name unsafe."""

from __future__ import annotations

import pytest

from lumozbatch.core.filenames import filename_problem, template_problem
from lumozbatch.core.grid import expand
from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.templates import parse_template
from lumozbatch.errors import ManifestError
from tests.core.manifest_helpers import build, job

def test_the_state_folder_is_not_an_output_folder() -> None:
    assert STATE_DIR == ".lumozbatch"
    assert filename_problem(f"{STATE_DIR}/x") == f"'{STATE_DIR}/x' would write into the ledger folder {STATE_DIR}/"
    assert filename_problem(f"a/{STATE_DIR}/x") is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{job}/{index}", None),
        ("/abs/{job}", "a filename must be relative to the output folder, not absolute"),
        ("~/{job}", "a filename must be relative to the output folder, not absolute"),
        ("C:/{job}", "a filename must be relative to the output folder, not absolute"),
        ("a\\{job}", "use / to separate folders in a filename, not \\"),
        ("a/../{job}", "a filename may not contain . or .. segments (it must stay inside the output folder)"),
    ],
)
def test_template_problem(template: str, problem: str | None) -> None:
    assert template_problem(parse_template(template)) == problem


def test_default_filename_uses_varying_variables_slugified() -> None:
    m = build(
        job(
            "    params: {prompt: '{subject}, {style}'}\n"
            "    matrix: {subject: ['An Old Fisherman!', 'a dancer'], style: [ink]}\n"
        )
    )
    assert [s.filename for s in expand(m)] == ["j/0000-an-old-fisherman", "j/0001-a-dancer"]


def test_output_filename_is_the_default_template() -> None:
    m = build(job("    params: {prompt: '{s}'}\n    matrix: {s: [a, b]}\n") + "output: {filename: 'all/{job}-{s}'}\n")
    assert [s.filename for s in expand(m)] == ["all/j-a", "all/j-b"]


def test_filename_problem() -> None:
    assert filename_problem("a/b-c") is None
    assert "absolute" in filename_problem("/etc/passwd")
    assert "absolute" in filename_problem("C:/x")
    assert "inside the output folder" in filename_problem("a/../../b")
    assert "inside the output folder" in filename_problem("a//b")
    assert "backslash" in filename_problem("a\\b")
    assert "ledger" in filename_problem(".lumozbatch/ledger")
    assert "longer than" in filename_problem("x" * 300)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("CON", "'CON' is a reserved device name on Windows"),
        ("a/nul", "'nul' is a reserved device name on Windows"),
        ("com1.x/y", "'com1.x' is a reserved device name on Windows"),
        ("LPT9 ", "'LPT9 ' is a reserved device name on Windows"),
        ("out/c:d", "'out/c:d' holds : which Windows or macOS cannot store in a filename"),
        ('a?b*c<d>|e"f', """'a?b*c<d>|e"f' holds ?*<>|" which Windows or macOS cannot store in a filename"""),
        ("dots./x", "'dots.' ends in a dot or a space, which Windows drops"),
        ("x/space ", "'space ' ends in a dot or a space, which Windows drops"),
    ],
)
def test_names_that_break_on_windows_or_macos_are_refused(name: str, problem: str) -> None:
    assert filename_problem(name) == problem


@pytest.mark.parametrize("name", ["console/x", "a/connie", "COM0", "nulls", "a.b/c-d", "con-tour", "über/ß"])
def test_names_that_only_look_alike_pass(name: str) -> None:
    assert filename_problem(name) is None


def test_a_template_with_a_forbidden_character_is_refused_once() -> None:
    assert template_problem(parse_template("{job}?{index}")) == (
        "a filename may not hold ? (Windows or macOS cannot store it)"
    )
    assert template_problem(parse_template("{job}/{seed:04d}")) is None


def test_a_value_with_a_slash_does_not_make_a_folder() -> None:
    text = job("    params: {prompt: 'a {s}'}\n    matrix: {s: [plain, a/b]}\n    filename: '{job}/{s}'\n")
    with pytest.raises(ManifestError) as caught:
        build(text)
    (diag,) = caught.value.diagnostics
    assert diag.line == 8 and diag.path == "jobs[0].filename"
    assert "the value of {s} holds / ('a/b'), which would make a folder" in diag.message
    assert "write the folders in the template" in diag.message


def test_reserved_values_are_refused_with_the_location() -> None:
    text = job("    params: {prompt: 'a {s}'}\n    matrix: {s: [ok, aux]}\n    filename: '{job}/{s}'\n")
    with pytest.raises(ManifestError) as caught:
        build(text)
    (diag,) = caught.value.diagnostics
    assert "'aux' is a reserved device name on Windows" in diag.message
    assert "s='aux'" in diag.message
