"""Make docs/live.png and docs/gallery.png with the project's own commands (run by hand).

    python docs/make_screenshots.py

1. runs ``lumozbatch apply manifests/sketch-portraits.yaml --sandbox --yes`` in a tmux pane
   and keeps the busiest screen it reads with ``capture-pane -e`` (colours included);
2. renders that screen with rich (``save_svg``) and photographs the SVG with headless
   chromium -> docs/live.png;
3. photographs the batch's own index.html -> docs/gallery.png.

Needs tmux and chromium (``apt-get install -y tmux chromium``). Writes the batch into a
temporary folder, never into outputs/. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.text import Text

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
MANIFEST = REPO / "manifests" / "sketch-portraits.yaml"
COLS, ROWS = 100, 30
MAX_PNG_BYTES = 300 * 1024
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]


def chromium_shot(url: str, out: Path, size: tuple[int, int], profile: Path) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium is missing: apt-get install -y chromium")
    subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
         f"--window-size={size[0]},{size[1]}", url],
        check=True, capture_output=True, timeout=120,
    )


def shrink(path: Path) -> None:
    """Palette PNG: screenshots of text and flat colour lose nothing visible."""
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    if path.stat().st_size > MAX_PNG_BYTES:
        sys.exit(f"{path} is {path.stat().st_size} bytes, over {MAX_PNG_BYTES}")


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True,
                          timeout=10).stdout


def busyness(screen: str) -> int:
    """How much a screen shows: jobs in flight, done, a rate-limit wait."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    score = 3 * len(re.findall(r"\b(running|submitting|downloading)\b", plain))
    score += 5 * ("waiting" in plain) + 2 * ("ETA" in plain and "ETA ?" not in plain)
    done = re.search(r"done (\d+)", plain)
    if done and 0 < int(done.group(1)):
        score += 4
    return score


def capture_live(work: Path) -> tuple[str, Path]:
    if shutil.which("tmux") is None:
        sys.exit("tmux is missing: apt-get install -y tmux")
    out_dir = work / "outputs" / "sketch-portraits"
    socket = f"lumozbatch-docs-{os.getpid()}"
    command = (
        f"cd {shlex.quote(str(work))} && lumozbatch apply {shlex.quote(str(MANIFEST))} --sandbox --yes "
        f"--out {shlex.quote(str(out_dir))}; echo EXIT=$?; sleep 600"
    )
    tmux(socket, "new-session", "-d", "-x", str(COLS), "-y", str(ROWS), "-s", "docs", command)
    best, best_score, final = "", -1, ""
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            screen = tmux(socket, "capture-pane", "-e", "-p", "-t", "docs")
            if "EXIT=" in screen:
                final = screen
                break
            score = busyness(screen)
            if score > best_score and "overall" in screen:
                best, best_score = screen, score
            time.sleep(0.25)
        else:
            sys.exit("apply did not finish within 180 s")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)
    print(final)
    return best, out_dir


def render_svg(ansi: str, path: Path) -> None:
    console = Console(record=True, width=COLS, file=open(os.devnull, "w"), force_terminal=True,
                      color_system="truecolor")
    lines = ansi.rstrip("\n").split("\n")
    while lines and not re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip():
        lines.pop()
    console.print(Text.from_ansi("\n".join(lines)), no_wrap=True, crop=True)
    console.save_svg(str(path), title="lumozbatch apply manifests/sketch-portraits.yaml --sandbox")


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lumozbatch-docs-") as tmp:
        work = Path(tmp)
        screen, out_dir = capture_live(work)
        svg = work / "live.svg"
        render_svg(screen, svg)
        width = int(float(re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text()).group(1)))
        height = int(float(re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text()).group(2)))
        chromium_shot(svg.as_uri(), DOCS / "live.png", (width, height), work / "profile")
        shrink(DOCS / "live.png")
        chromium_shot((out_dir / "index.html").as_uri(), DOCS / "gallery.png", (1100, 900), work / "profile")
        shrink(DOCS / "gallery.png")
    for name in ("live.png", "gallery.png"):
        print(f"docs/{name}: {(DOCS / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
