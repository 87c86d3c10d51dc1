"""Output filenames: the readable default, templates, and what makes a name unsafe."""

from __future__ import annotations

import pytest

from lumozbatch.core.filenames import filename_problem, template_problem
from lumozbatch.core.grid import expand
from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.templates import parse_template
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
