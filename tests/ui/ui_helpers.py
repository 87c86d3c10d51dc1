"""Helpers for the UI tests: synthetic ledgers (real records, real replay), images, a browser.

A module of its own (not conftest) so test modules can import it by a name no other folder uses."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

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


class Browser:
    """Debian's chromium, headless, with a fresh profile and no network chatter."""

    def __init__(self, exe: str, profile: Path) -> None:
        self.exe = exe
        self.profile = profile

    def _run(self, *args: str) -> str:
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
    return shutil.which("chromium") or shutil.which("chromium-browser")
