"""Metadata in images, byte-level: pixels untouched, Pillow still opens them and reads it back."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ui_helpers import image_bytes
from lumozbatch.provenance import (
    embed_bytes,
    embed_metadata,
    git_info,
    parameters_text,
    read_metadata,
    read_metadata_bytes,
)

META = {
    "model": "flux-sketch-smudge",
    "params": {
        "prompt": "Sketch Smudge, a fisherman </lumozbatch:meta> & <b>é 日本</b>",
        "negative_prompt": "blurry",
        "num_inference_steps": 28,
        "seed": 3141592653,
        "aspect_ratio": "1:1",
    },
    "job": "portraits",
    "identity": "ab" * 32,
    "variables": {"subject": "a fisherman"},
    "request_id": 212121212121212,
}


def pixels(data: bytes) -> tuple[tuple[int, int], str, bytes]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size, im.mode, im.tobytes()


def user_comment(im: Image.Image) -> str:
    raw = im.getexif().get_ifd(0x8769)[0x9286]
    assert raw[:8] == b"UNICODE\x00"
    return raw[8:].decode("utf-16-be")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_round_trip_keeps_pixels_and_tools_see_the_parameters(tmp_path: Path, fmt: str) -> None:
    original = image_bytes(fmt)
    path = tmp_path / f"out.{fmt.lower()}"
    path.write_bytes(original)
    assert embed_metadata(path, META) is True
    data = path.read_bytes()
    assert len(data) > len(original)
    assert read_metadata(path) == META
    assert pixels(data) == pixels(original)  # the encoded image data is untouched
    with Image.open(path) as im:
        if fmt == "PNG":
            assert im.text["parameters"] == parameters_text(META)
            assert im.text["lumozbatch"].startswith("{")
        else:
            assert user_comment(im) == parameters_text(META)
            assert b"lumozbatch:meta" in im.info["xmp"] if isinstance(im.info["xmp"], bytes) else "lumozbatch:meta" in im.info["xmp"]


def test_parameters_text_reads_like_a1111() -> None:
    assert parameters_text(META).splitlines() == [
        "Sketch Smudge, a fisherman </lumozbatch:meta> & <b>é 日本</b>",
        "Negative prompt: blurry",
        "Steps: 28, Seed: 3141592653, Aspect ratio: 1:1, Model: flux-sketch-smudge",
    ]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_embedding_again_replaces_ours(fmt: str) -> None:
    original = image_bytes(fmt)
    once = embed_bytes(original, META)
    changed = {**META, "params": {**META["params"], "seed": 7}}
    twice = embed_bytes(once, changed)
    assert read_metadata_bytes(twice) == changed
    assert twice == embed_bytes(original, changed)  # nothing stale left behind


def test_webp_lossless_with_alpha_becomes_extended_and_keeps_alpha() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (33, 17), (10, 20, 30, 128)).save(buf, "WEBP", lossless=True)
    original = buf.getvalue()
    assert original[12:16] == b"VP8L"
    data = embed_bytes(original, META)
    assert data[12:16] == b"VP8X"
    assert data[20] & 0x10  # alpha flag
    assert int.from_bytes(data[24:27], "little") + 1 == 33
    assert int.from_bytes(data[27:30], "little") + 1 == 17
    assert pixels(data) == pixels(original)
    assert read_metadata_bytes(data) == META


def test_jpeg_keeps_existing_exif_and_jfif_first() -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, "JPEG", exif=exif.tobytes())
    data = embed_bytes(buf.getvalue(), META)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif()[0x010F] == "CameraMaker"
    assert read_metadata_bytes(data) == META
    plain = embed_bytes(image_bytes("JPEG"), META)
    assert plain[2:4] == b"\xff\xe0"  # JFIF APP0 still first


def test_existing_xmp_packet_is_extended_not_replaced() -> None:
    theirs = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Them"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, "JPEG", xmp=theirs.encode())
    data = embed_bytes(embed_bytes(buf.getvalue(), META), META)
    assert b'xmp:CreatorTool="Them"' in data
    assert read_metadata_bytes(data) == META


def test_not_an_image_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"GIF89a not for us")
    assert embed_metadata(path, META) is False
    assert path.read_bytes() == b"GIF89a not for us"
    assert read_metadata(path) is None
    broken = tmp_path / "broken.png"
    broken.write_bytes(image_bytes("PNG")[:30])
    assert embed_metadata(broken, META) is False
    assert read_metadata(broken) is None


def test_image_without_metadata_reads_none(tmp_path: Path) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        path = tmp_path / f"plain.{fmt}"
        path.write_bytes(image_bytes(fmt))
        assert read_metadata(path) is None


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_git_info_inside_and_outside_a_repository(tmp_path: Path) -> None:
    outside = tmp_path / "loose" / "m.yaml"
    outside.parent.mkdir()
    outside.write_text("version: 1\n")
    assert git_info(outside) == {"manifest": str(outside)}

    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    manifest = repo / "manifests" / "m.yaml"
    manifest.write_text("version: 1\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert git_info(manifest) == {"manifest": str(manifest), "git_commit": head, "git_dirty": False,
                                  "git_path": "manifests/m.yaml"}
    manifest.write_text("version: 1\nname: x\n")
    assert git_info(manifest)["git_dirty"] is True
    git(repo, "checkout", "-q", "--", ".")
    new = repo / "manifests" / "new.yaml"  # an untracked manifest is not in the commit
    new.write_text("version: 1\n")
    assert git_info(new)["git_dirty"] is True
    assert git_info(manifest)["git_dirty"] is False
