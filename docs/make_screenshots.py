"""Make docs/live.png and docs/gallery.png with the project's own commands (run by hand).

    python docs/make_screenshots.py

1. starts ``lumozbatch sandbox`` with a tight rate limit and a few failures, runs
   ``lumozbatch apply manifests/sketch-portraits.yaml`` against it in a tmux pane, and keeps
   the busiest screen it reads with ``capture-pane -e`` (colours included);
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
SANDBOX_FLAGS = ["--rate-limit", "6/4", "--latency", "2-5", "--fail-rate", "0.2", "--image-scale", "0.25"]
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
    """Optimised PNG; a 256-colour palette only when that is needed to stay small."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    rgb.save(path, optimize=True)
    if path.stat().st_size > MAX_PNG_BYTES:
        rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
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
    score += 20 * bool(re.search(r"^ +failed \S+#", plain, re.M))  # a failure as it happened
    done = re.search(r"done (\d+)", plain)
    if done and 0 < int(done.group(1)):
        score += 4
    return score


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """A sandbox with a tight rate limit and some failures, so the screen has something to show."""
    proc = subprocess.Popen(
        ["lumozbatch", "sandbox", "--port", "0", *SANDBOX_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1)
    proc.kill()
    sys.exit("the sandbox did not start")


def capture_live(work: Path) -> tuple[str, Path]:
    if shutil.which("tmux") is None:
        sys.exit("tmux is missing: apt-get install -y tmux")
    out_dir = work / "outputs" / "sketch-portraits"
    socket = f"lumozbatch-docs-{os.getpid()}"
    sandbox, url = start_sandbox()
    command = (
        f"cd {shlex.quote(str(work))} && LUMOZ_API_KEY=sandbox-key lumozbatch apply "
        f"{shlex.quote(str(MANIFEST))} --base-url {url} --yes "
        f"--out {shlex.quote(str(out_dir))}; echo EXIT=$?; sleep 600"
    )
    best, best_score, final = "", -1, ""
    try:
        tmux(socket, "new-session", "-d", "-x", str(COLS), "-y", str(ROWS), "-s", "docs", command)
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
        sandbox.terminate()
        sandbox.wait(timeout=10)
    print(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", final).rstrip())
    return best, out_dir


def render_svg(ansi: str, path: Path) -> None:
    console = Console(record=True, width=COLS, file=open(os.devnull, "w"), force_terminal=True,
                      color_system="truecolor")
    lines = ansi.rstrip("\n").split("\n")
    while lines and not re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip():
        lines.pop()
    console.print(Text.from_ansi("\n".join(lines)), no_wrap=True, crop=True)
    console.save_svg(str(path), title="lumozbatch apply manifests/sketch-portraits.yaml")


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
        view = "#rows=subject&cols=seed&size=150"  # sections by mood; the layout is in the hash
        chromium_shot((out_dir / "index.html").as_uri() + view, DOCS / "gallery.png", (1000, 1000), work / "profile")
        shrink(DOCS / "gallery.png")
    for name in ("live.png", "gallery.png"):
        print(f"docs/{name}: {(DOCS / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
