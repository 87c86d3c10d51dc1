"""Fixtures for the UI tests: synthetic ledgers (real records, real replay) and images."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from lumozbatch.core.ledger_codec import LedgerState, encode, replay

LEDGER = Path(".lumozbatch") / "ledger.jsonl"
MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"
COLORS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 180, 30), (150, 40, 160), (30, 170, 170)]


def identity_of(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def image_bytes(fmt: str, color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (96, 64)) -> bytes:
    buf = io.BytesIO()
    kwargs = {"quality": 85} if fmt in ("JPEG", "WEBP") else {}
    Image.new("RGB", size, color).save(buf, fmt, **kwargs)
    return buf.getvalue()


class Batch:
    """Builds the ledger records of a small batch, step by step, like a run would."""

    def __init__(self, name: str = "sketch-portraits", manifest: str = "manifests/sketch.yaml") -> None:
        self.records: list[dict[str, Any]] = [{"t": "batch", "v": 1, "name": name, "manifest": manifest, "at": 1.0}]
        self.ids: list[str] = []

    def job(self, job: str, variables: dict[str, Any], *, model: str = "flux-sketch-smudge",
            seed: int = 1, filename: str | None = None, repeat: int = 0) -> str:
        ident = identity_of(job, variables, seed, repeat)
        params = {"prompt": "Sketch Smudge, " + ", ".join(str(v) for v in variables.values()), "seed": seed}
        self.records.append({
            "t": "job", "id": ident, "job": job, "index": len(self.ids), "repeat": repeat, "model": model,
            "params": params, "variables": variables,
            "filename": filename or f"{job}/{len(self.ids):04d}-{ident[:12]}", "known_model": True,
        })
        self.ids.append(ident)
        return ident

    def done(self, ident: str, file: str, request_id: int = 100) -> None:
        self.records += [
            {"t": "intent", "id": ident, "attempt": 1},
            {"t": "accepted", "id": ident, "request_id": request_id},
            {"t": "completed", "id": ident, "request_id": request_id, "url": f"http://x/{request_id}.png",
             "output_type": "image"},
            {"t": "downloaded", "id": ident, "file": file, "sha256": "0" * 64, "bytes": 10},
        ]

    def failed(self, ident: str, reason: str, code: str | None = "validation_error", billed: bool = False) -> None:
        self.records += [
            {"t": "intent", "id": ident, "attempt": 1},
            {"t": "failed", "id": ident, "reason": reason, "code": code, "billed": billed},
        ]

    def ambiguous(self, ident: str, reason: str = "read timeout after the run was sent") -> None:
        self.records += [
            {"t": "intent", "id": ident, "attempt": 1},
            {"t": "ambiguous", "id": ident, "reason": reason},
        ]

    def accepted(self, ident: str, request_id: int = 7) -> None:
        self.records += [
            {"t": "intent", "id": ident, "attempt": 1},
            {"t": "accepted", "id": ident, "request_id": request_id},
        ]

    def state(self) -> LedgerState:
        return replay(self.records)

    def write(self, out_dir: Path) -> Path:
        path = out_dir / LEDGER
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(encode(r) for r in self.records))
        return path


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


class Browser:
    """Debian's chromium, headless, with a fresh profile and no network chatter."""

    def __init__(self, exe: str, profile: Path) -> None:
        self.exe = exe
        self.profile = profile

    def _run(self, *args: str) -> str:
        import subprocess

        cmd = [
            self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={self.profile}", "--virtual-time-budget=5000", *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
        if done.returncode != 0:
            raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def dump_dom(self, url: str) -> str:
        return self._run("--dump-dom", url)

    def screenshot(self, url: str, path: Path, size: tuple[int, int] = (1200, 900)) -> Path:
        self._run(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", url)
        assert path.is_file(), "chromium wrote no screenshot"
        return path


def find_chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    import os

    exe = find_chromium()
    if exe is None:
        if os.environ.get("LUMOZBATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (LUMOZBATCH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
