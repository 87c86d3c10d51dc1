"""Fixtures for the UI tests; the helpers they use live in ui_helpers.py."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Callable

import pytest

# The helpers are imported by name from this folder, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_helpers import COLORS, Batch, Browser, find_chromium, image_bytes  # noqa: E402


@pytest.fixture
def batch() -> Callable[..., Batch]:
    return Batch


@pytest.fixture
def portraits(tmp_path: Path) -> tuple[Batch, Path]:
    """A 2x2x2 grid (subject x mood x seed) in tmp_path/outputs/sketch-portraits: six done
    (real PNGs on disk, distinct colours), one failed, one ambiguous."""
    out = tmp_path / "outputs" / "sketch-portraits"
    b = Batch()
    combos = itertools.product(["an old fisherman", "a young dancer"], ["melancholic", "joyful"], [1, 2])
    for i, (subject, mood, seed) in enumerate(combos):
        ident = b.job("portraits", {"subject": subject, "mood": mood, "seed": seed}, seed=seed)
        if i == 3:
            b.failed(ident, "guidance must be at most 10")
        elif i == 6:
            b.ambiguous(ident)
        else:
            rel = f"portraits/{subject.replace(' ', '_')}-{mood}-s{seed}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(image_bytes("PNG", COLORS[i % len(COLORS)], (128, 128)))
            b.done(ident, rel, request_id=1000 + i)
    b.write(out)
    return b, out


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    exe = find_chromium()
    if exe is None:
        if os.environ.get("LUMOZBATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (LUMOZBATCH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
