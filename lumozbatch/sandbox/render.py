"""Real, deterministic images for the sandbox's outputs.

Same (prompt, seed, size, format, quality) -> same bytes; a different prompt or seed gives a
visibly different picture: palette and shapes come from a hash of prompt + seed, and the
prompt's first words and the seed are written on it, so contact-sheet cells tell apart.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["FORMATS", "RenderSpec", "image_size", "render", "set_cache_size"]

#: output_format -> (Pillow format name, MIME type)
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

# megapixels "1" is 1024x1024 at 1:1, as FLUX-family services count it.
_MEGAPIXEL_AREA = 1024 * 1024


def _round16(value: float) -> int:
    return max(16, int(round(value / 16.0)) * 16)


def image_size(aspect_ratio: str, megapixels: str | float, scale: float = 1.0) -> tuple[int, int]:
    """Width and height for an aspect ratio ("16:9") and megapixels ("1", "0.25"), both sides
    multiples of 16; ``scale`` shrinks the sides afterwards (0.125: 1024x1024 -> 128x128)."""
    a, b = (float(x) for x in aspect_ratio.split(":"))
    area = float(megapixels) * _MEGAPIXEL_AREA
    width = math.sqrt(area * a / b)
    height = width * b / a
    return _round16(width * scale), _round16(height * scale)


RenderSpec = tuple[str, int, int, int, str, int]  # prompt, seed, width, height, fmt, quality


def render(prompt: str, seed: int, width: int, height: int, fmt: str, quality: int) -> bytes:
    """The encoded image; the most recent ones are cached (see ``set_cache_size``)."""
    return _cached(prompt, seed, width, height, fmt, quality)


def _render(prompt: str, seed: int, width: int, height: int, fmt: str, quality: int) -> bytes:
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode("utf-8")).digest()
    rng = random.Random(digest)
    hue = rng.random()
    palette = [_hsv(hue + rng.uniform(-0.12, 0.12) + k * 0.33, rng.uniform(0.45, 0.9),
                    rng.uniform(0.55, 0.95)) for k in range(5)]
    img = Image.new("RGB", (width, height), palette[0])
    draw = ImageDraw.Draw(img)
    # A vertical two-colour gradient in bands (cheap, and still obviously per-image).
    top, bottom = palette[0], palette[1]
    bands = 32
    for i in range(bands):
        t = i / (bands - 1)
        colour = tuple(int(top[c] + (bottom[c] - top[c]) * t) for c in range(3))
        draw.rectangle([0, height * i // bands, width, height * (i + 1) // bands], fill=colour)
    for _ in range(rng.randint(5, 9)):
        colour = palette[rng.randint(2, 4)]
        x0, y0 = rng.uniform(-0.2, 0.9) * width, rng.uniform(-0.2, 0.9) * height
        size = rng.uniform(0.15, 0.5) * min(width, height)
        box = [x0, y0, x0 + size * rng.uniform(0.6, 1.6), y0 + size * rng.uniform(0.6, 1.6)]
        kind = rng.randint(0, 2)
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=palette[0], width=max(1, width // 128))
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])],
                         fill=colour)
    _caption(draw, width, height, prompt, seed)
    out = io.BytesIO()
    pil_format = FORMATS[fmt][0]
    if pil_format == "PNG":
        img.save(out, "PNG", compress_level=1)
    else:
        img.save(out, pil_format, quality=max(1, min(100, quality)))
    return out.getvalue()


def _caption(draw: ImageDraw.ImageDraw, width: int, height: int, prompt: str, seed: int) -> None:
    """The prompt (as much as 4 lines hold) and the seed, white on a black band at the bottom."""
    size = max(8, min(width, height) // 18)
    font = _font(size)
    chars = max(8, int(width / (size * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), chars, max_lines=4, placeholder=" ...")
    lines.append(f"seed {seed}")
    step = size + size // 3
    band = step * len(lines) + size // 2
    draw.rectangle([0, height - band, width, height], fill=(0, 0, 0))
    y = height - band + size // 4
    for line in lines:
        draw.text((size // 3, y), line, fill=(255, 255, 255), font=font)
        y += step


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


_cached = lru_cache(maxsize=256)(_render)


def set_cache_size(size: int) -> None:
    """Resizes (and so empties) the render cache; a no-op when the size is unchanged."""
    global _cached
    if _cached.cache_parameters()["maxsize"] != size:
        _cached = lru_cache(maxsize=size)(_render)
