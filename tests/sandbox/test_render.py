"""The sandbox's images: real files of the asked format and size, deterministic, distinct."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lumozbatch.sandbox.render import image_size, render


@pytest.mark.parametrize(("ratio", "mp", "scale", "want"), [
    ("1:1", "1", 1.0, (1024, 1024)),
    ("1:1", "0.25", 1.0, (512, 512)),
    ("1:1", "1", 0.125, (128, 128)),
    ("16:9", "1", 1.0, (1360, 768)),
    ("9:16", "1", 1.0, (768, 1360)),
    ("21:9", "0.25", 1.0, (784, 336)),
])
def test_sizes_follow_ratio_and_megapixels(ratio: str, mp: str, scale: float,
                                           want: tuple[int, int]) -> None:
    w, h = image_size(ratio, mp, scale)
    assert (w, h) == want
    assert w % 16 == 0 and h % 16 == 0


@pytest.mark.parametrize(("fmt", "pil"), [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_real_images_in_the_asked_format(fmt: str, pil: str) -> None:
    data = render("Sketch Smudge, a lighthouse", 7, 160, 96, fmt, 80)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == pil
        assert img.size == (160, 96)


def test_same_parameters_same_bytes_and_different_seed_or_prompt_differs() -> None:
    a = render("a tower at dawn", 1, 128, 128, "png", 80)
    assert render("a tower at dawn", 1, 128, 128, "png", 80) == a
    b = render("a tower at dawn", 2, 128, 128, "png", 80)
    c = render("a tower at dusk", 1, 128, 128, "png", 80)
    assert len({a, b, c}) == 3
    # visibly different, not just different bytes: compare pixels
    pa, pb = (Image.open(io.BytesIO(x)).convert("RGB").tobytes() for x in (a, b))
    diff = sum(1 for i in range(0, len(pa), 3) if pa[i:i + 3] != pb[i:i + 3])
    assert diff > 128 * 128 // 4


def test_quality_changes_lossy_output() -> None:
    hi = render("q", 1, 256, 256, "jpg", 95)
    lo = render("q", 1, 256, 256, "jpg", 10)
    assert len(lo) < len(hi)
