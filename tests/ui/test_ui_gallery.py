"""The gallery: cells from the ledger, the axes, escaping, and the page in a real browser."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from ui_helpers import COLORS
from lumozbatch.ui.gallery import axes, build_cells, gallery_html


def write_page(state, out: Path, title: str = "sketch-portraits") -> Path:
    page = out / "index.html"
    page.write_text(gallery_html(build_cells(state), title=title, counts={"done": 6, "failed": 1}), encoding="utf-8")
    return page


def test_cells_follow_the_ledger(portraits) -> None:
    b, _out = portraits
    cells = build_cells(b.state())
    assert [c["identity"] for c in cells] == b.ids
    assert [c["state"] for c in cells] == ["done"] * 3 + ["failed"] + ["done"] * 2 + ["ambiguous", "done"]
    assert cells[0]["src"] == "portraits/an_old_fisherman-melancholic-s1.png"
    assert cells[3]["src"] is None and cells[3]["reason"] == "guidance must be at most 10"
    assert cells[0]["variables"] == {"subject": "an old fisherman", "mood": "melancholic", "seed": 1}


def multi_job(batch):
    b = batch()
    for subject in ("a", "b"):
        for seed in (1, 2):
            b.job("portraits", {"subject": subject, "style": "ink"}, seed=seed)
    b.job("towers", {"time": "dawn", "style": "ink"}, seed=9, model="hidream-l1")
    b.job("towers", {"time": "dusk", "style": "ink"}, seed=9, model="hidream-l1")
    return b


def test_each_job_has_the_axes_that_vary_within_it(batch) -> None:
    from lumozbatch.ui.gallery import _jobs, _with_pseudo

    cells = _with_pseudo(build_cells(multi_job(batch).state()))
    # style never varies; seed is no variable of portraits but differs there; towers' seeds agree
    assert _jobs(cells) == [
        {"id": "portraits", "model": "flux-sketch-smudge", "axes": ["subject", "seed"]},
        {"id": "towers", "model": "hidream-l1", "axes": ["time"]},
    ]
    assert axes(cells[:4]) == ["subject", "seed"]


def test_every_job_gets_its_own_sheet_in_a_browser(batch, browser, tmp_path: Path) -> None:
    b = multi_job(batch)
    page = tmp_path / "index.html"
    page.write_text(gallery_html(build_cells(b.state()), title="multi"), encoding="utf-8")
    dom = browser.dump_dom(page.as_uri())
    assert re.findall(r'<div class="jobhead" data-job="([^"]+)">', dom) == ["portraits", "towers"]
    tables = re.findall(r'<table class="grid" data-rows="([^"]*)" data-cols="([^"]*)"', dom)
    assert tables == [("subject", "seed"), ("time", "")]  # towers falls back to its own axis
    swapped = browser.dump_dom(page.as_uri() + "#rows=seed&cols=time")
    tables = re.findall(r'<table class="grid" data-rows="([^"]*)" data-cols="([^"]*)"', swapped)
    assert tables == [("seed", "subject"), ("", "time")]  # towers keeps time, as the columns


def test_src_is_url_quoted_and_data_cannot_break_out_of_the_script(batch, tmp_path: Path) -> None:
    b = batch()
    ident = b.job("p", {"subject": "</script><script>document.title='pwned'</script>"})
    b.done(ident, "p/a #1?.png")
    html = gallery_html(build_cells(b.state()), title="<b>t</b>")
    assert html.count("</script>") == 2  # the data block's and the code's own
    assert "&lt;b&gt;t&lt;/b&gt;" in html
    assert '"src": "p/a%20%231%3F.png"' in html


def test_page_loads_images_and_switches_axes_in_a_browser(portraits, browser, tmp_path: Path) -> None:
    b, out = portraits
    page = write_page(b.state(), out)
    dom = browser.dump_dom(page.as_uri())
    assert re.findall(r'<table class="grid" data-rows="([^"]*)" data-cols="([^"]*)"', dom) == [("subject", "mood")] * 2
    assert re.findall(r"<h2>([^<]*)</h2>", dom) == ["seed = 1", "seed = 2"]
    loads = re.findall(r'data-load="([a-z]+)"', dom)
    assert loads == ["loaded"] * 6, loads
    assert "guidance must be at most 10" in dom and "validation_error" in dom
    assert "sent, answer lost; may have been billed" in dom
    assert 'data-ready="1"' in dom
    assert "--size" not in dom.split("<head>")[0]  # the default size: nothing set on <html>

    switched = browser.dump_dom(page.as_uri() + "#rows=mood&cols=seed")
    assert re.findall(r'<table class="grid" data-rows="([^"]*)" data-cols="([^"]*)"', switched) == [("mood", "seed")] * 2
    assert re.findall(r"<h2>([^<]*)</h2>", switched) == ["subject = an old fisherman", "subject = a young dancer"]
    assert re.findall(r'<th class="colhead">([^<]*)</th>', switched)[:2] == ["1", "2"]
    assert re.findall(r'data-load="([a-z]+)"', switched) == ["loaded"] * 6
    # the select boxes show the axes in use
    assert re.search(r'<option value="mood" selected="">mood</option>', switched)

    assert "--size" not in switched.split("<head>")[0]
    sized = browser.dump_dom(page.as_uri() + "#rows=mood&cols=seed&size=120")
    assert re.search(r'<html lang="en" style="--size: ?120px;?">', sized)
    assert re.search(r'<input id="size" [^>]*>', sized)

    flat = browser.dump_dom(page.as_uri() + "#rows=subject&cols=")
    assert re.findall(r"<h2>([^<]*)</h2>", flat) == [
        "mood = melancholic, seed = 1", "mood = melancholic, seed = 2", "mood = joyful, seed = 1", "mood = joyful, seed = 2",
    ]

    shot = browser.screenshot(page.as_uri(), tmp_path / "shot.png", size=(1000, 1400))
    with Image.open(shot) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    seen = {rgb for n, rgb in colors if n > 5000}
    done_colors = {COLORS[i % len(COLORS)] for i in (0, 1, 2, 4, 5, 7)}
    near = lambda c, d: all(abs(x - y) <= 3 for x, y in zip(c, d))  # noqa: E731
    assert all(any(near(c, s) for s in seen) for c in done_colors), (done_colors, seen)


def test_gallery_command_writes_index_html_from_the_ledger(portraits) -> None:
    from click.testing import CliRunner

    from lumozbatch.cli import main

    b, out = portraits
    result = CliRunner().invoke(main, ["gallery", "outputs/sketch-portraits"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {Path('outputs/sketch-portraits') / 'index.html'}\n"
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>sketch-portraits - lumozbatch gallery</title>" in html
    assert all(ident in html for ident in b.ids)
    assert "portraits/an_old_fisherman-melancholic-s1.png" in html
    assert not list(out.glob(".index-*"))  # the temporary file was renamed into place


def test_gallery_without_a_ledger_exits_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lumozbatch.cli import main

    (tmp_path / "nothing").mkdir()
    result = CliRunner().invoke(main, ["gallery", "nothing"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ")


def test_a_deleted_output_is_shown_as_missing(portraits, browser) -> None:
    b, out = portraits
    page = write_page(b.state(), out)
    (out / "portraits/a_young_dancer-joyful-s2.png").unlink()
    dom = browser.dump_dom(page.as_uri())
    assert dom.count("<b>file missing</b><span>portraits/a_young_dancer-joyful-s2.png</span>") == 1
    assert re.findall(r'data-load="([a-z]+)"', dom) == ["loaded"] * 5


def test_the_page_needs_nothing_from_the_network(portraits) -> None:
    b, _out = portraits
    html = gallery_html(build_cells(b.state()), title="t")
    assert not re.search(r"https?://", html)  # no CDN, no web font, no tracker
    assert "<script src" not in html and "<link" not in html
    assert html.count("<script") == 2  # the embedded data and the inline code


def test_template_markers_in_the_data_are_left_alone(batch) -> None:
    b = batch()
    b.job("p", {"subject": "{{DATA}} and {{TITLE}}"})
    html = gallery_html(build_cells(b.state()), title="{{DATA}}")
    assert html.count('<script type="application/json" id="data">') == 1
    assert "<title>{{DATA}} - lumozbatch gallery</title>" in html
    assert '"subject": "{{DATA}} and {{TITLE}}"' in html
