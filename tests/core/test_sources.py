"""``file:`` sources: .txt, .csv and .jsonl text -> rows, each remembering its line."""

from __future__ import annotations

from lumozbatch.core.grid import expand
from lumozbatch.core.sources import parse_source
from lumozbatch.core.where import Where
from tests.core.manifest_helpers import HEAD, build, job, messages

def test_txt_rows_and_lines() -> None:
    table, problems = parse_source("a\n\n  b  \n", "s.txt", ".txt", "who")
    assert problems == [] and table is not None
    assert (table.names, table.rows) == (("who",), (("a",), ("b",)))
    assert table.wheres == (Where("s.txt", 1, 1), Where("s.txt", 3, 1))


def test_csv_cells_are_text_and_rows_must_fit_the_header() -> None:
    table, problems = parse_source("a,b\n1,x\n", "s.csv", ".csv", "")
    assert problems == [] and table is not None and table.rows == (("1", "x"),)
    table, problems = parse_source("a,b\n1\n", "s.csv", ".csv", "")
    assert table is None and [str(d) for d in problems] == ["s.csv:2:1: row has 1 cells, the header has 2"]


def test_jsonl_keeps_json_types_and_refuses_nan() -> None:
    table, problems = parse_source('{"n": 1.5, "b": true}\n', "s.jsonl", ".jsonl", "")
    assert problems == [] and table is not None and table.rows == ((1.5, True),)
    table, problems = parse_source('{"n": NaN}\n', "s.jsonl", ".jsonl", "")
    assert table is None and "NaN is not a number lumozbatch can send" in problems[0].message


def test_unsupported_suffix() -> None:
    table, problems = parse_source("x", "s.xlsx", ".xlsx", "")
    assert table is None and problems[0].message == "unsupported source type .xlsx; use .txt, .csv or .jsonl"


def test_file_sources_txt_csv_jsonl() -> None:
    text = job(
        "    params: {prompt: '{subject} at {time}, {place}'}\n"
        "    matrix: {subject: {file: subjects.txt}}\n"
        "    zip: {file: rows.csv}\n"
    ) + "  - id: k\n    model: hidream-l1\n    params: {prompt: '{p}'}\n    zip: {file: rows.jsonl}\n"
    m = build(
        text,
        {
            "subjects.txt": "a cat\n\n  a dog  \n",
            "rows.csv": "time,place\ndawn,\"a harbour, misty\"\n",
            "rows.jsonl": '{"p": "x", "num_inference_steps": 12}\n\n{"p": "y", "num_inference_steps": 14}\n',
        },
    )
    specs = list(expand(m))
    assert [s.params["prompt"] for s in specs] == ["a cat at dawn, a harbour, misty", "a dog at dawn, a harbour, misty", "x", "y"]
    assert [s.params.get("num_inference_steps") for s in specs[2:]] == [12, 14]


def test_sources_problems() -> None:
    base = HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{p}'}\n"
    assert "keys ['q'] differ from the first line's ['p']" in messages(base + "    zip: {file: r.jsonl}\n", {"r.jsonl": '{"p": "x"}\n{"q": "y"}\n'})
    assert "r.jsonl:1:1" in messages(base + "    zip: {file: r.jsonl}\n", {"r.jsonl": "not json\n"})
    assert "has no non-empty line" in messages(base + "    matrix: {p: {file: e.txt}}\n", {"e.txt": "\n  \n"})
    assert "unsupported source type .xlsx" in messages(base + "    matrix: {p: {file: a.xlsx}}\n", {"a.xlsx": "x"})
    assert "a .txt source gives one list" in messages(base + "    zip: {file: a.txt}\n", {"a.txt": "x"})
    assert "column 'bad name' is not a plain variable name" in messages(base + "    zip: {file: a.csv}\n", {"a.csv": "p,bad name\nx,y\n"})


def test_txt_has_no_comments_a_hash_line_is_a_value_and_warned_about() -> None:
    # Every non-empty line is a value, verbatim: a prompt may start with "#". A line that
    # looks like a comment is still sent, so the file says so once, at the first such line.
    table, problems = parse_source("# comment?\nfox\n\n#2 tag\n", "p.txt", ".txt", "who")
    assert table is not None and table.rows == (("# comment?",), ("fox",), ("#2 tag",))
    (warning,) = problems
    assert warning.severity == "warning" and (warning.line, warning.col) == (1, 1)
    assert warning.message == (
        "2 lines start with # (first: line 1): a .txt source has no comments, each is a value; "
        "delete them if they are notes"
    )


def test_a_hash_line_warns_but_validates() -> None:
    from lumozbatch.core.build import build_partial
    from lumozbatch.core.manifest import SourceText
    from lumozbatch.core.yamlsafe import parse_yaml
    from lumozbatch.resources import schema_catalogue

    doc = parse_yaml(job("    params: {prompt: '{p}'}\n    zip: {p: {file: p.txt}}\n"), "m.yaml")
    texts = {"p.txt": SourceText("p.txt", text="# note\nfox\n")}
    manifest, problems = build_partial(doc, "m.yaml", texts, schema_catalogue())
    assert manifest is not None and [j.combinations for j in manifest.jobs] == [2]
    assert [(d.severity, d.line) for d in problems] == [("warning", 1)]
