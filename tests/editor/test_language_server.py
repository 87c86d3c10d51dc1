"""The example manifests and an ``init``-made repository in the real YAML language server
(Red Hat's yaml-language-server, the one VS Code and Neovim run), spoken to over LSP stdio.

Skipped only where Node.js is missing; CI (LUMOZBATCH_REQUIRE_BROWSER=1) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lumozbatch.cli import main
from lumozbatch.resources import model_schemas
from tests.conftest import MANIFESTS, REPO
from tests.editor.lsp import LanguageServer, install_server, node, server_script

EXAMPLES = sorted(MANIFESTS.glob("*.yaml"))
PORTRAITS = MANIFESTS / "sketch-portraits.yaml"
TOWERS = MANIFESTS / "towers.yaml"


@pytest.fixture(scope="module")
def server() -> Iterator[LanguageServer]:
    if node() is None:
        if os.environ.get("LUMOZBATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("Node.js is required (LUMOZBATCH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Node.js not installed: the editor test runs yaml-language-server")
    script = server_script() or install_server()
    if script is None:
        pytest.fail("yaml-language-server is missing and `npm ci --prefix .ci` could not install it")
    ls = LanguageServer(script, REPO)
    try:
        yield ls
    finally:
        ls.close()


@pytest.fixture(scope="module")
def init_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository made by ``lumozbatch init``, plus copies of the examples, far from this checkout."""
    target = tmp_path_factory.mktemp("user-repo")
    result = CliRunner().invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    for name in ("towers.yaml", "towers.csv", "sketch-portraits.yaml"):
        shutil.copy(MANIFESTS / name, target / "manifests" / name)
    return target


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n")


def _flagged(ls: LanguageServer, path: Path, old: str, new: str) -> tuple[int, list[dict]]:
    """Edit one spot of the document; returns the edited line and the diagnostics."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    edited = text.replace(old, new)
    uri = ls.open(path, edited)
    return _line_of(edited, new), ls.diagnostics(uri)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_show_no_diagnostic(server: LanguageServer, path: Path) -> None:
    assert server.diagnostics(server.open(path)) == []
    # and the schema is really in use: a wrong version is flagged
    line, diagnostics = _flagged(server, path, "version: 1\n", "version: 2\n")
    assert [d for d in diagnostics if d["range"]["start"]["line"] == line], diagnostics
    server.open(path)  # back to the file's text


def test_an_init_made_repository_shows_no_diagnostic(server: LanguageServer, init_repo: Path) -> None:
    for path in sorted((init_repo / "manifests").glob("*.yaml")):
        assert server.diagnostics(server.open(path)) == [], path.name
    example = init_repo / "manifests" / "example.yaml"
    line, diagnostics = _flagged(server, example, "guidance: 3\n", "guidance: 99\n")
    assert [d["message"] for d in diagnostics if d["range"]["start"]["line"] == line] == ["Value is above the maximum of 10."]
    line, diagnostics = _flagged(server, init_repo / "manifests" / "towers.yaml", "num_inference_steps: 30", "num_inference_steps: 500")
    assert [d["message"] for d in diagnostics if d["range"]["start"]["line"] == line] == ["Value is above the maximum of 100."]


MISTAKES = [
    # (file, old text, new text, words of the message)
    (PORTRAITS, 'aspect_ratio: "4:5"', 'aspect_ratio: "7:3"', "Value is not accepted"),
    (PORTRAITS, "guidance: 3\n", "guidance: 99\n", "above the maximum of 10"),
    (PORTRAITS, "guidance: 3\n", "guidence: 3\n", "guidence is not allowed"),
    (PORTRAITS, "output_format: webp", "output_format: gif", "Value is not accepted"),
    (PORTRAITS, "num_inference_steps: 28", "negative_promt: blurry", "negative_promt is not allowed"),
    (PORTRAITS, "  output_quality: 85", "  guidence: 3", "guidence is not allowed"),
    (TOWERS, "num_inference_steps: 30", "num_inference_steps: 500", "above the maximum of 100"),
    (TOWERS, "num_inference_steps: 30", "guidance: 3", "guidance is not allowed"),
    (PORTRAITS, "version: 1\n", "version: 2\n", ""),
    (PORTRAITS, "    matrix:", "    matirx:", "matirx is not allowed"),
    (PORTRAITS, "concurrency: 4", "concurrency: 0", "minimum"),
    (PORTRAITS, "limits:", "limitz: {}\nlimits:", "limitz is not allowed"),
]


@pytest.mark.parametrize(("path", "old", "new", "words"), MISTAKES, ids=[m[2].strip() for m in MISTAKES])
def test_mistakes_are_flagged_on_the_edited_line(server: LanguageServer, path: Path, old: str, new: str, words: str) -> None:
    line, diagnostics = _flagged(server, path, old, new)
    on_line = [d["message"] for d in diagnostics if d["range"]["start"]["line"] == line]
    assert on_line and any(words in m for m in on_line), diagnostics
    server.open(path)


def _complete(ls: LanguageServer, path: Path, old: str, new: str, marker: str = "|") -> list[str]:
    """Completion labels at ``marker`` in the edited document."""
    text = path.read_text(encoding="utf-8").replace(old, new)
    line = _line_of(text, marker)
    column = text.splitlines()[line].index(marker)
    uri = ls.open(path, text.replace(marker, ""))
    labels = [item["label"] for item in ls.completion(uri, line, column)]
    ls.open(path)
    return labels


def test_parameter_names_are_completed_for_the_jobs_model(server: LanguageServer) -> None:
    labels = _complete(server, PORTRAITS, "      guidance: 3\n", "      guidance: 3\n      |\n")
    unset = set(model_schemas()["flux-sketch-smudge"]["properties"]) - {"prompt", "num_inference_steps", "guidance", "seed"}
    assert unset <= set(labels), labels
    assert "negative_prompt" not in labels  # hidream-l1's, not this model's
    labels = _complete(server, TOWERS, "      num_inference_steps: 30\n", "      num_inference_steps: 30\n      |\n")
    assert {"negative_prompt", "guidance_scale"} <= set(labels) and "aspect_ratio" not in labels, labels


def test_parameter_names_are_completed_in_defaults(server: LanguageServer) -> None:
    labels = _complete(server, PORTRAITS, "  output_quality: 85\n", "  output_quality: 85\n  |\n")
    assert {"guidance", "megapixels", "lora_scale"} <= set(labels), labels


def test_enum_values_and_model_ids_are_completed(server: LanguageServer) -> None:
    assert set(_complete(server, PORTRAITS, "output_format: webp", "output_format: |")) >= {"webp", "jpg", "png"}
    labels = _complete(server, PORTRAITS, 'aspect_ratio: "4:5"          # quoted: unquoted 4:5 is a YAML 1.1 number', "aspect_ratio: |")
    assert {"1:1", "16:9", "9:21"} <= set(labels), labels
    assert set(_complete(server, PORTRAITS, "model: flux-sketch-smudge", "model: |")) >= set(model_schemas())


def test_hover_on_a_parameter_shows_its_description(server: LanguageServer) -> None:
    text = PORTRAITS.read_text(encoding="utf-8")
    uri = server.open(PORTRAITS)
    for key, model in (("guidance", "flux-sketch-smudge"), ("output_quality", "flux-sketch-smudge")):
        line = _line_of(text, f"{key}:")
        column = text.splitlines()[line].index(key) + 2
        description = model_schemas()[model]["properties"][key]["description"]
        assert description in server.hover(uri, line, column), key
    text = TOWERS.read_text(encoding="utf-8")
    uri = server.open(TOWERS)
    line = _line_of(text, "num_inference_steps:")
    hover = server.hover(uri, line, text.splitlines()[line].index("num_inference_steps") + 1)
    assert model_schemas()["hidream-l1"]["properties"]["num_inference_steps"]["description"] in hover
    assert json.dumps(model_schemas()["flux-sketch-smudge"]["properties"]["num_inference_steps"]["description"])[1:-1] not in hover


def test_the_modeline_of_lumozbatch_schema_points_at_the_installed_schemas(server: LanguageServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    modeline = CliRunner().invoke(main, ["schema"]).output
    body = PORTRAITS.read_text(encoding="utf-8").split("\n", 1)[1]
    path = tmp_path_factory.mktemp("anywhere") / "m.yaml"
    path.write_text(modeline + body, encoding="utf-8")
    assert server.diagnostics(server.open(path)) == []
    line, diagnostics = _flagged(server, path, "guidance: 3\n", "guidance: 99\n")
    assert [d["message"] for d in diagnostics if d["range"]["start"]["line"] == line] == ["Value is above the maximum of 10."]
